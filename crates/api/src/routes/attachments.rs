//! Text files attached to a chat message (`multipart/form-data` on `POST /api/chat`): checked for
//! count, size and type, then appended to the message so the model reads them.

use axum::extract::Multipart;
use axum::http::StatusCode;
use uuid::Uuid;

use super::compat::CompatChatRequest;
use crate::error::{ApiError, ApiResult};
use crate::ApiConfig;

/// Extensions read as text when the client sends no useful content type.
const TEXT_EXTENSIONS: &[&str] = &[
    "txt", "md", "markdown", "csv", "tsv", "json", "jsonl", "yaml", "yml", "toml", "xml", "html", "htm", "log", "ini",
    "cfg", "conf", "rs", "py", "js", "ts", "go", "java", "c", "h", "cpp", "rb", "sh", "sql", "css",
];

fn is_text_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
                | "application/csv"
                | "application/x-ndjson"
                | "application/javascript"
                | "application/sql"
        )
}

/// A text file attached to a message.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub text: String,
}

/// Reads the form into a chat request and its files.
pub(crate) async fn read_form(
    mut form: Multipart,
    config: &ApiConfig,
) -> ApiResult<(CompatChatRequest, Vec<Attachment>)> {
    let bad = |code, message: String| ApiError::bad_request(code, message);
    let mut message = None;
    let mut session_id = None;
    let mut files: Vec<Attachment> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| bad("invalid_form", e.body_text()))? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "message" => message = Some(field.text().await.map_err(|e| bad("invalid_form", e.body_text()))?),
            "session_id" => {
                let text = field.text().await.map_err(|e| bad("invalid_form", e.body_text()))?;
                if !text.trim().is_empty() {
                    session_id = Some(
                        Uuid::parse_str(text.trim())
                            .map_err(|_| bad("invalid_form", "session_id is not a UUID".into()))?,
                    );
                }
            }
            "files" | "files[]" | "file" => {
                if files.len() == config.max_files {
                    return Err(bad("too_many_files", format!("at most {} files may be attached", config.max_files)));
                }
                let file_name = field.file_name().unwrap_or("attachment").to_owned();
                let content_type = field.content_type().unwrap_or("").to_owned();
                let extension = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
                if !is_text_type(&content_type) && !TEXT_EXTENSIONS.contains(&extension.as_str()) {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_file_type",
                        format!("{file_name} is not a text file; attach text, Markdown, CSV, JSON, YAML, XML or source code"),
                    ));
                }
                let mut bytes = Vec::new();
                let mut field = field;
                while let Some(chunk) = field.chunk().await.map_err(|e| bad("invalid_form", e.body_text()))? {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > config.max_file_bytes {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "file_too_large",
                            format!("{file_name} is larger than {} bytes", config.max_file_bytes),
                        ));
                    }
                }
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_file_type",
                        format!("{file_name} is not UTF-8 text"),
                    )
                })?;
                if text.contains('\0') {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_file_type",
                        format!("{file_name} contains NUL bytes"),
                    ));
                }
                files.push(Attachment { name: file_name, text });
            }
            other => return Err(bad("invalid_form", format!("unknown form field {other:?}"))),
        }
    }
    let message = message.ok_or_else(|| bad("invalid_form", "the form needs a `message` field".into()))?;
    Ok((CompatChatRequest { message, session_id, credentials: None }, files))
}

/// The message followed by each file, fenced and named: what is stored and what the model reads.
pub(crate) fn with_files(message: &str, files: &[Attachment]) -> String {
    let mut out = message.to_owned();
    for Attachment { name, text } in files {
        let fence = if text.contains("```") { "~~~~" } else { "```" };
        out.push_str(&format!("\n\n[Attached file: {name}, {} bytes]\n{fence}\n{text}\n{fence}", text.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_are_recognised_and_files_are_fenced_after_the_message() {
        assert!(is_text_type("text/plain; charset=utf-8") && is_text_type("application/json"));
        assert!(!is_text_type("application/pdf") && !is_text_type("image/png"));
        let out = with_files("summarise", &[Attachment { name: "a.md".into(), text: "has ``` inside".into() }]);
        assert!(out.starts_with("summarise\n\n[Attached file: a.md, 14 bytes]\n~~~~\nhas ``` inside\n~~~~"));
    }
}
