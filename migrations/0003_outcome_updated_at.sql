-- When the CRM last changed the deal, as the CRM sent it (optional): the latest
-- `updated_at` is the deal's current outcome, so a late retry of an old update does not
-- win. Rows without it are ordered by `received_at`.
ALTER TABLE outcomes ADD COLUMN updated_at TEXT;
