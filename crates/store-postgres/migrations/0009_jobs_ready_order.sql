-- Claiming walks this index in the order jobs are handed out (due time, then id) and stops at the
-- first one it can take; expired leases are found through it too (status 'running').
CREATE INDEX jobs_ready_in_order ON jobs (status, run_after, id);
CREATE INDEX jobs_leases ON jobs (status, lease_until, id);
DROP INDEX jobs_ready;
