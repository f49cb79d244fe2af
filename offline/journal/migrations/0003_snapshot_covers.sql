-- covers is the journal position up to which a snapshot holds this
-- terminal's own ops: the acknowledgement watermark when the snapshot
-- came, or the position the ack that brought it named. The view counts the
-- card's ops after it on top of the snapshot, and the offline allowance its
-- redeems after it. NULL (snapshots stored before this column) reads as the
-- current watermark, as every snapshot did before, and its allowance still
-- counts the offline redeems made since its AsOf, as it did then.
ALTER TABLE snapshots ADD COLUMN covers INTEGER;
