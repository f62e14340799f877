//! The coordinator's append-only, fsync'ed journal of transitions and fence attempts, with torn-record detection on replay.
