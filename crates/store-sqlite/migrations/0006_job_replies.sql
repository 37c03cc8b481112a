-- A job's reply is stored once: a second run of the same job (its worker died after storing the
-- reply, before recording the job as done) finds it instead of answering again.
CREATE UNIQUE INDEX messages_one_reply_per_job ON messages ((metadata ->> 'job_id'))
    WHERE role = 'assistant' AND (metadata ->> 'job_id') IS NOT NULL;
