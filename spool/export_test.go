package spool

// SetSyncBytes lowers s's SyncBytes, so that short appends sync behind
// their writes (see File.syncBehindLocked).
func SetSyncBytes(s *Spool, n int64) { s.syncBytes = n }
