package backup

import (
	"archive/tar"
	"errors"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// paxXattrPrefix prefixes a PAX record holding an extended attribute, as
// GNU tar, bsdtar and star write them.
const paxXattrPrefix = "SCHILY.xattr."

// errXattrsUnsupported means the file system has no extended attributes.
var errXattrsUnsupported = errors.New("extended attributes not supported")

// archivedXattr reports whether an extended attribute is data of the
// volume, to back up and restore:
//
//   - user.* and trusted.* (the latter only listed to CAP_SYS_ADMIN);
//   - security.*, such as security.capability, but not security.selinux:
//     a label is the node's policy for whichever pod mounts the volume,
//     relabelled by the container runtime; restoring an old pod's
//     categories would lock the new one out;
//   - POSIX ACLs, whose system.* value the kernel takes back as it gave
//     it, with numeric IDs like the owners'. Other system.* attributes are
//     views of the file system's internals (NFSv4 ACLs, and the like).
//
// A PAX record's key cannot hold '=', an attribute's name can: such a
// name is not archived.
func archivedXattr(name string) bool {
	switch {
	case strings.Contains(name, "="):
		return false
	case name == "security.selinux":
		return false
	case strings.HasPrefix(name, "user."), strings.HasPrefix(name, "trusted."), strings.HasPrefix(name, "security."):
		return true
	default:
		return name == "system.posix_acl_access" || name == "system.posix_acl_default"
	}
}

// xattrReader reads extended attributes into reused buffers, which grow
// as the largest list and value require. They start small, since the
// kernel allocates (and zeroes) a buffer of the size passed on every call.
type xattrReader struct {
	names, value []byte
}

func newXattrReader() *xattrReader {
	return &xattrReader{names: make([]byte, 1024), value: make([]byte, 1024)}
}

// sized calls f with *buf, and when the answer does not fit, asks f for
// the size with an empty buffer and tries again.
func sized(buf *[]byte, f func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := f(*buf)
		if err == nil {
			return (*buf)[:n], nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return nil, err
		}
		if n, err = f(nil); err != nil {
			return nil, err
		}
		*buf = make([]byte, max(n, 2*len(*buf)))
	}
}

// read returns the archived attributes, as PAX records, with list and get
// being the list and get system calls for one file. An attribute removed
// between list and get is left out; a file system without extended
// attributes answers errXattrsUnsupported.
func (r *xattrReader) read(list func([]byte) (int, error), get func(string, []byte) (int, error)) (map[string]string, error) {
	names, err := sized(&r.names, list)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, errXattrsUnsupported
	}
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var records map[string]string
	for name := range strings.SplitSeq(strings.TrimSuffix(string(names), "\x00"), "\x00") {
		if !archivedXattr(name) {
			continue
		}
		value, err := sized(&r.value, func(b []byte) (int, error) { return get(name, b) })
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if records == nil {
			records = map[string]string{}
		}
		records[paxXattrPrefix+name] = string(value)
	}
	return records, nil
}

// headerXattrs returns the extended attributes of a tar header, by name.
func headerXattrs(h *tar.Header) []string {
	var names []string
	for k := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattrPrefix); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
