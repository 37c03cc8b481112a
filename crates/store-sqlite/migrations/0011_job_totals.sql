-- Jobs ever finished, by outcome: workers add what they finished every tenth of a second, so the
-- operators' counts read three rows rather than the whole jobs table, and they outlive the jobs
-- that job retention deletes.
CREATE TABLE job_totals (
    status    TEXT PRIMARY KEY CHECK (status IN ('completed', 'failed', 'cancelled')),
    finished  BIGINT NOT NULL
);
INSERT INTO job_totals (status, finished) SELECT 'completed', COUNT(*) FROM jobs WHERE status = 'completed';
INSERT INTO job_totals (status, finished) SELECT 'failed', COUNT(*) FROM jobs WHERE status = 'failed';
INSERT INTO job_totals (status, finished) SELECT 'cancelled', COUNT(*) FROM jobs WHERE status = 'cancelled';
-- The last hour's failures are counted from this one; failures are few, so it stays small, and a
-- job that completes adds nothing to it.
CREATE INDEX jobs_failed ON jobs (completed_at) WHERE status = 'failed';
