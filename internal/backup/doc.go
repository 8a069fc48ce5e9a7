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
// Archives keep owners, modes, modification times and extended attributes
// (xattr.go says which). A restore as root sets them all, which takes
// CAP_CHOWN, CAP_FOWNER and CAP_DAC_OVERRIDE, CAP_FSETID for setgid bits
// of groups root is not in, and CAP_SETFCAP for file capabilities
// (security.capability); attributes the target refuses (ENOTSUP, or EPERM
// for want of a privilege, as trusted.* without CAP_SYS_ADMIN) are skipped
// and counted.
//
// The data mover backs up each volume of a run R on its own, as R-<claim>
// holding the one source <claim>; a restore of R and a source finds it by
// the manifests' sources (select.go).
//
// The agent is Linux software, like the operator: it reads owners from
// syscall.Stat_t, opens files with O_NOFOLLOW, and sets extended
// attributes through /proc/self/fd.
package backup
