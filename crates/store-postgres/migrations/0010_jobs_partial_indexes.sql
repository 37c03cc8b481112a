-- The claim's two indexes hold only the jobs a claim can take: queued jobs in hand-out order (due
-- time, then id) and running jobs by lease end. Finished jobs, nearly all of the table, leave both,
-- so the indexes stay as small as the queue however long the history grows, and a job's last
-- status change inserts no entry in them.
DROP INDEX jobs_ready_in_order;
DROP INDEX jobs_leases;
CREATE INDEX jobs_queued ON jobs (run_after, id) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_until, id) WHERE status = 'running';
