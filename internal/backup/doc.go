// Package backup is the backup agent the operator's CronJobs run, as the
// backup and restore subcommands of the operator binary (see Main).
//
// A backup reads the workspace's volumes (and optionally its file bucket)
// once, as one tar stream compressed with zstd, and fans the compressed
// stream out to every location. Each location gets its own copy sealed
// with envelope encryption under its own KMS key (format.go documents the
// archive format), uploaded with the SDK's multipart transfer manager and
// SSE-KMS under the same key. Nothing is staged on disk and memory does
// not grow with the data: per location one archive chunk and the
// uploader's in-flight parts.
//
// A backup counts only once it is committed: its manifest is written in
// every location after every location's archive is uploaded and read back
// (see the bucket layout in inventory.go). Retention (prune.go) runs only
// after a committed backup, and never deletes a location's newest complete
// backup. Restores (restore.go) verify everything they read, fall back
// from one location to the next, and unpack through os.Root so that no
// archive entry can write outside the target.
//
// The agent is Linux software, like the operator: it reads owners from
// syscall.Stat_t and opens files with O_NOFOLLOW.
package backup
