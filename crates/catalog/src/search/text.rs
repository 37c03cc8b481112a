//! Text preparation shared by indexing and querying.

/// Splits identifiers into words so `get_stockPrice` matches "stock price": underscores and dashes
/// become spaces and a lower-case letter followed by an upper-case one gets a space between them.
pub fn words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if c == '_' || c == '-' || c == '/' || c == '.' {
            out.push(' ');
        } else {
            if c.is_uppercase() && previous.is_some_and(|p| p.is_lowercase()) {
                out.push(' ');
            }
            out.push(c);
        }
        previous = Some(c);
    }
    out
}

/// Splits a request into the parts that may each need a different server: sentences, clauses
/// joined by "and"/"then"/"also", and items of a list. Parts shorter than two words are folded
/// into their neighbour. The whole request is not among the parts.
pub fn parts(query: &str) -> Vec<String> {
    const JOINERS: [&str; 10] = [
        " and then ",
        " then ",
        " and also ",
        " also ",
        " and ",
        " as well as ",
        " after that ",
        " plus ",
        "; ",
        " while ",
    ];
    let mut pieces: Vec<String> = Vec::new();
    for sentence in sentences(query) {
        let mut rest = vec![sentence.to_string()];
        for joiner in JOINERS {
            rest = rest
                .into_iter()
                .flat_map(|piece| {
                    let lower = piece.to_lowercase();
                    if lower.len() != piece.len() {
                        return vec![piece];
                    }
                    let mut out = Vec::new();
                    let mut start = 0;
                    for (at, _) in lower.match_indices(joiner) {
                        out.push(piece[start..at].to_string());
                        start = at + joiner.len();
                    }
                    out.push(piece[start..].to_string());
                    out
                })
                .collect();
        }
        for piece in rest.into_iter().flat_map(|p| p.split(", ").map(str::to_string).collect::<Vec<_>>()) {
            let piece = piece.trim().to_string();
            if piece.is_empty() {
                continue;
            }
            match pieces.last_mut() {
                Some(last) if piece.split_whitespace().count() < 3 => {
                    last.push(' ');
                    last.push_str(&piece);
                }
                _ => pieces.push(piece),
            }
        }
    }
    if pieces.len() == 1 {
        pieces.clear();
    }
    pieces
}

/// Sentences and clauses: split after `.`, `?`, `!`, `;` or `:` followed by a space (so file names
/// and URLs stay whole), and at line breaks.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_space = chars.peek().is_none_or(|(_, n)| n.is_whitespace());
        if c == '\n' || (".?!;:".contains(c) && next_is_space) {
            out.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&text[start..]);
    out
}

/// A capability the request needs without naming it (see `cues`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cue {
    /// A short description of the capability, searched like a part of the request.
    pub text: &'static str,
    /// Whether the request states the need outright (a file path to read or write): the server that
    /// best matches the cue is then held in the top five, however the rest of the request ranks.
    pub held: bool,
}

/// Capabilities a request needs without naming them: a file path means reading or writing files,
/// "today" or "next Wednesday" means knowing the date, a link means fetching a page, a price on a
/// shop means browsing it. Each cue found adds a short description of that capability, searched
/// like a part of the request.
pub fn cues(query: &str) -> Vec<Cue> {
    let lower = query.to_lowercase();
    let has_word =
        |words: &[&str]| lower.split(|c: char| !c.is_alphanumeric() && c != '\'').any(|w| words.contains(&w));
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let mut out = Vec::new();
    let path = lower.split_whitespace().any(|w| {
        let w = w.trim_matches(|c: char| "`'\".,;:()".contains(c));
        (w.starts_with('/') || w.starts_with("~/") || w.starts_with("./")) && w.len() > 2 && !w.starts_with("//")
    });
    let cue = |text| Cue { text, held: false };
    let files = "read and write files and directories on the local filesystem";
    if path {
        out.push(Cue { text: files, held: true });
    } else if has(&[
        "save it as",
        "save the",
        "save as",
        "write the",
        "to a file",
        "into a file",
        "local file",
        "folder",
    ]) {
        out.push(cue(files));
    }
    if has_word(&[
        "today",
        "today's",
        "tomorrow",
        "yesterday",
        "now",
        "tonight",
        "current",
        "currently",
        "recent",
        "recently",
        "latest",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "week",
        "weekend",
        "24h",
        "hours",
        "date",
        "dates",
        "timezone",
        "deadline",
        "upcoming",
    ]) {
        out.push(cue("get the current date and time in a timezone"));
    }
    if has(&["http://", "https://", "www.", ".com", ".org"]) {
        out.push(cue("fetch a web page from a URL and read its content"));
    }
    if has_word(&[
        "amazon", "ebay", "taobao", "jd", "walmart", "website", "browse", "browser", "links", "link", "site", "page",
        "shop", "store",
    ]) {
        out.push(cue("browser automation: navigate web pages, click elements and take screenshots"));
    }
    if has_word(&[
        "calculate",
        "calculation",
        "compute",
        "sum",
        "average",
        "percentage",
        "percent",
        "ratio",
        "total",
        "multiply",
        "divide",
        "math",
        "formula",
    ]) {
        out.push(cue("calculate mathematical expressions and arithmetic"));
    }
    if has_word(&["cny", "usd", "eur", "gbp", "jpy", "rmb", "yuan", "dollars", "euros", "currency", "exchange"]) {
        out.push(cue("convert currency amounts with exchange rates"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_become_words() {
        assert_eq!(words("get_stockPrice"), "get stock Price");
        assert_eq!(words("search-wikipedia"), "search wikipedia");
    }

    #[test]
    fn a_request_splits_into_its_parts() {
        let parts = parts("Find today's LeetCode daily challenge and write it to /root/leetcode.md");
        assert_eq!(parts, vec!["Find today's LeetCode daily challenge", "write it to /root/leetcode.md"]);
        assert!(super::parts("list my open issues").is_empty(), "one part is the whole request");
        let parts = super::parts("Monitor Gmail for invoices, save them to Notion, then post a summary to Slack.");
        assert_eq!(parts.len(), 3, "{parts:?}");
    }

    #[test]
    fn a_file_path_is_a_held_cue_and_a_mere_mention_of_saving_is_not() {
        let files = |q: &str| cues(q).into_iter().find(|c| c.text.contains("filesystem"));
        assert_eq!(
            files("Summarise NCT04280705 and save it as Markdown to /root/md/trial.md").map(|c| c.held),
            Some(true)
        );
        assert_eq!(files("write the notes into a file").map(|c| c.held), Some(false));
        assert_eq!(files("post the summary to Slack"), None);
        // A date is a cue too, but never held: "latest" rarely means the request needs a clock.
        assert!(cues("the latest news today").iter().all(|c| !c.held));
    }
}
