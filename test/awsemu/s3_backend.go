package awsemu

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"k8s.io/utils/clock"
)

// memBackend is the in-memory object store behind gofakes3. It replaces
// gofakes3's s3mem backend, whose versioning is unusable for us: deleting the
// current version of a key that has older versions leaves the key without
// data, after which GetObject, HeadObject and ListObjects panic (a delete
// marker can never be removed to restore an object); ListObjectVersions
// returns versions oldest first and never sets NextKeyMarker, so SDK
// paginators silently stop after one page; and an overwrite merges the old
// object's metadata into the new one. gofakes3 still provides the S3
// protocol, XML, routing and multipart uploads on top of this store.
type memBackend struct {
	clock clock.PassiveClock

	mu          sync.RWMutex
	buckets     map[string]*memBucket
	lastVersion uint64
}

var (
	_ gofakes3.Backend          = (*memBackend)(nil)
	_ gofakes3.VersionedBackend = (*memBackend)(nil)
)

type memBucket struct {
	created    time.Time
	versioning gofakes3.VersioningStatus // "", Enabled or Suspended
	keys       map[string][]*memVersion  // history per key, oldest first
}

// memVersion is one version of an object or a delete marker. Versions
// written while versioning was never enabled, or suspended, have the empty
// ID, which S3 calls "null".
type memVersion struct {
	key          string
	id           gofakes3.VersionID
	deleteMarker bool
	body         []byte
	hash         []byte
	metadata     map[string]string
	lastModified time.Time
}

// nullVersionAlias is how requests name the null version (see
// nameNullVersion); memBackend never issues it as a real version ID.
const nullVersionAlias = "awsemu-null-version"

// storedVersionID maps the ways a version can be named to its stored ID.
func storedVersionID(id gofakes3.VersionID) gofakes3.VersionID {
	if id == nullVersionAlias || id == "null" {
		return ""
	}
	return id
}

func newMemBackend(clk clock.PassiveClock) *memBackend {
	return &memBackend{clock: clk, buckets: map[string]*memBucket{}}
}

// bucket returns the named bucket; callers hold b.mu.
func (b *memBackend) bucket(name string) (*memBucket, error) {
	bk := b.buckets[name]
	if bk == nil {
		return nil, gofakes3.BucketNotFound(name)
	}
	return bk, nil
}

// newVersionID returns increasing IDs, so runs are deterministic and IDs
// sort by age. Callers hold b.mu for writing.
func (b *memBackend) newVersionID() gofakes3.VersionID {
	b.lastVersion++
	return gofakes3.VersionID(fmt.Sprintf("v%031d", b.lastVersion))
}

func (bk *memBucket) current(key string) *memVersion {
	history := bk.keys[key]
	if len(history) == 0 {
		return nil
	}
	return history[len(history)-1]
}

// add appends a version (or delete marker) as S3 does for the bucket's
// versioning state: with versioning enabled it gets a new ID and everything
// is kept; otherwise it takes the null ID and replaces the previous null
// version.
func (b *memBackend) add(bk *memBucket, v *memVersion) {
	if bk.versioning == gofakes3.VersioningEnabled {
		v.id = b.newVersionID()
	} else {
		bk.keys[v.key] = slices.DeleteFunc(bk.keys[v.key], func(old *memVersion) bool { return old.id == "" })
	}
	bk.keys[v.key] = append(bk.keys[v.key], v)
}

func (v *memVersion) object(rangeRequest *gofakes3.ObjectRangeRequest, withBody bool) (*gofakes3.Object, error) {
	obj := &gofakes3.Object{
		Name:           v.key,
		Metadata:       maps.Clone(v.metadata),
		Size:           int64(len(v.body)),
		Hash:           v.hash,
		VersionID:      v.id,
		IsDeleteMarker: v.deleteMarker,
		Contents:       io.NopCloser(bytes.NewReader(nil)),
	}
	if withBody && !v.deleteMarker {
		rnge, err := rangeRequest.Range(obj.Size)
		if err != nil {
			return nil, err
		}
		data := v.body
		if rnge != nil {
			data = data[rnge.Start : rnge.Start+rnge.Length]
		}
		obj.Range = rnge
		obj.Contents = io.NopCloser(bytes.NewReader(data))
	}
	return obj, nil
}

func (b *memBackend) ListBuckets() ([]gofakes3.BucketInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	infos := make([]gofakes3.BucketInfo, 0, len(b.buckets))
	for _, name := range slices.Sorted(maps.Keys(b.buckets)) {
		infos = append(infos, gofakes3.BucketInfo{Name: name, CreationDate: gofakes3.NewContentTime(b.buckets[name].created)})
	}
	return infos, nil
}

func (b *memBackend) CreateBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buckets[name] != nil {
		return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, name)
	}
	b.buckets[name] = &memBucket{created: b.clock.Now(), keys: map[string][]*memVersion{}}
	return nil
}

func (b *memBackend) BucketExists(name string) (bool, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.buckets[name] != nil, nil
}

// DeleteBucket refuses while any version or delete marker remains, as S3.
func (b *memBackend) DeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(name)
	if err != nil {
		return err
	}
	if len(bk.keys) > 0 {
		return gofakes3.ResourceError(gofakes3.ErrBucketNotEmpty, name)
	}
	delete(b.buckets, name)
	return nil
}

func (b *memBackend) ForceDeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.bucket(name); err != nil {
		return err
	}
	delete(b.buckets, name)
	return nil
}

func (b *memBackend) VersioningConfiguration(name string) (gofakes3.VersioningConfiguration, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	bk, err := b.bucket(name)
	if err != nil {
		return gofakes3.VersioningConfiguration{}, err
	}
	return gofakes3.VersioningConfiguration{Status: bk.versioning}, nil
}

// SetVersioningConfiguration follows S3: once enabled, versioning can only be
// suspended, never turned off again.
func (b *memBackend) SetVersioningConfiguration(name string, v gofakes3.VersioningConfiguration) error {
	if v.MFADelete.Enabled() {
		return gofakes3.ErrNotImplemented
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(name)
	if err != nil {
		return err
	}
	switch {
	case v.Status == gofakes3.VersioningEnabled:
		bk.versioning = gofakes3.VersioningEnabled
	case bk.versioning != "":
		bk.versioning = gofakes3.VersioningSuspended
	}
	return nil
}

// PutObject stores a new version. Metadata replaces the previous version's
// entirely. Not stored are empty values (the front layer sends them to keep
// gofakes3's CopyObject from carrying over a source object's encryption) and
// the copy directives gofakes3 passes along with the metadata.
func (b *memBackend) PutObject(bucketName, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	body, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	stored := maps.Clone(meta)
	maps.DeleteFunc(stored, func(k, v string) bool {
		return v == "" || strings.HasPrefix(k, "X-Amz-Copy-Source") || k == "X-Amz-Metadata-Directive"
	})
	hash := md5.Sum(body)

	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	if conditions != nil {
		info := &gofakes3.ConditionalObjectInfo{}
		if cur := bk.current(key); cur != nil && !cur.deleteMarker {
			info.Exists, info.Hash = true, cur.hash
		}
		if err := gofakes3.CheckPutConditions(conditions, info); err != nil {
			return gofakes3.PutObjectResult{}, err
		}
	}
	v := &memVersion{key: key, body: body, hash: hash[:], metadata: stored, lastModified: b.clock.Now()}
	b.add(bk, v)
	return gofakes3.PutObjectResult{VersionID: v.id}, nil
}

func (b *memBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(b, srcBucket, srcKey, dstBucket, dstKey, meta)
}

func (b *memBackend) GetObject(bucketName, key string, rangeRequest *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	return b.readCurrent(bucketName, key, rangeRequest, true)
}

func (b *memBackend) HeadObject(bucketName, key string) (*gofakes3.Object, error) {
	return b.readCurrent(bucketName, key, nil, false)
}

// readCurrent returns the current version. A key whose current version is a
// delete marker does not exist; gofakes3 relies on that, for instance to
// refuse copying a deleted object.
func (b *memBackend) readCurrent(bucketName, key string, rangeRequest *gofakes3.ObjectRangeRequest, withBody bool) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	cur := bk.current(key)
	if cur == nil || cur.deleteMarker {
		return nil, gofakes3.KeyNotFound(key)
	}
	return cur.object(rangeRequest, withBody)
}

func (b *memBackend) GetObjectVersion(bucketName, key string, id gofakes3.VersionID, rangeRequest *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	return b.readVersion(bucketName, key, id, rangeRequest, true)
}

func (b *memBackend) HeadObjectVersion(bucketName, key string, id gofakes3.VersionID) (*gofakes3.Object, error) {
	return b.readVersion(bucketName, key, id, nil, false)
}

func (b *memBackend) readVersion(bucketName, key string, id gofakes3.VersionID, rangeRequest *gofakes3.ObjectRangeRequest, withBody bool) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	for _, v := range bk.keys[key] {
		if v.id == storedVersionID(id) {
			return v.object(rangeRequest, withBody)
		}
	}
	return nil, gofakes3.ErrNoSuchVersion
}

// DeleteObject deletes the current version: with versioning on or suspended
// by stacking a delete marker, otherwise for good. Deleting a missing key
// succeeds, as in S3.
func (b *memBackend) DeleteObject(bucketName, key string) (gofakes3.ObjectDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return gofakes3.ObjectDeleteResult{}, err
	}
	return b.deleteCurrent(bk, key), nil
}

func (b *memBackend) deleteCurrent(bk *memBucket, key string) gofakes3.ObjectDeleteResult {
	if bk.versioning == "" {
		delete(bk.keys, key)
		return gofakes3.ObjectDeleteResult{}
	}
	marker := &memVersion{key: key, deleteMarker: true, lastModified: b.clock.Now()}
	b.add(bk, marker)
	return gofakes3.ObjectDeleteResult{IsDeleteMarker: true, VersionID: marker.id}
}

// DeleteObjectVersion removes one version for good. Removing the current
// one makes the next newest current again, which is how a delete marker is
// removed to restore an object.
func (b *memBackend) DeleteObjectVersion(bucketName, key string, id gofakes3.VersionID) (gofakes3.ObjectDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return gofakes3.ObjectDeleteResult{}, err
	}
	return bk.deleteVersion(key, storedVersionID(id)), nil
}

func (bk *memBucket) deleteVersion(key string, id gofakes3.VersionID) gofakes3.ObjectDeleteResult {
	history := bk.keys[key]
	i := slices.IndexFunc(history, func(v *memVersion) bool { return v.id == id })
	if i < 0 {
		return gofakes3.ObjectDeleteResult{}
	}
	result := gofakes3.ObjectDeleteResult{IsDeleteMarker: history[i].deleteMarker, VersionID: id}
	if history = slices.Delete(history, i, i+1); len(history) == 0 {
		delete(bk.keys, key)
	} else {
		bk.keys[key] = history
	}
	return result
}

func (b *memBackend) DeleteMulti(bucketName string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	objects := make([]gofakes3.ObjectID, len(keys))
	for i, k := range keys {
		objects[i] = gofakes3.ObjectID{Key: k}
	}
	return b.DeleteMultiVersions(bucketName, objects...)
}

func (b *memBackend) DeleteMultiVersions(bucketName string, objects ...gofakes3.ObjectID) (gofakes3.MultiDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return gofakes3.MultiDeleteResult{}, err
	}
	var result gofakes3.MultiDeleteResult
	for _, obj := range objects {
		if obj.VersionID == "" {
			b.deleteCurrent(bk, obj.Key)
		} else {
			bk.deleteVersion(obj.Key, storedVersionID(gofakes3.VersionID(obj.VersionID)))
		}
		result.Deleted = append(result.Deleted, obj)
	}
	return result, nil
}

// ListBucket lists current, non-deleted objects in key order, grouping keys
// under common prefixes when a delimiter is given.
func (b *memBackend) ListBucket(bucketName string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	list := gofakes3.NewObjectList()
	var (
		count      int64
		lastPrefix string
		match      gofakes3.PrefixMatch
	)
	for _, key := range slices.Sorted(maps.Keys(bk.keys)) {
		cur := bk.current(key)
		if cur.deleteMarker || !prefix.Match(key, &match) || listedBefore(key, page.Marker, prefix.Delimiter) {
			continue
		}
		if match.CommonPrefix && match.MatchedPart == lastPrefix {
			continue
		}
		if page.MaxKeys > 0 && count == page.MaxKeys {
			list.IsTruncated = true
			break
		}
		if match.CommonPrefix {
			lastPrefix = match.MatchedPart
			list.AddPrefix(match.MatchedPart)
			list.NextMarker = match.MatchedPart
		} else {
			list.Add(&gofakes3.Content{
				Key:          key,
				LastModified: gofakes3.NewContentTime(cur.lastModified),
				ETag:         gofakes3.FormatETag(cur.hash),
				Size:         int64(len(cur.body)),
			})
			list.NextMarker = key
		}
		count++
	}
	if !list.IsTruncated {
		list.NextMarker = ""
	}
	return list, nil
}

// listedBefore reports whether key was already listed on an earlier page:
// it sorts at or before marker, or falls under the common prefix that marker
// names.
func listedBefore(key, marker, delimiter string) bool {
	if marker == "" {
		return false
	}
	return key <= marker || (delimiter != "" && strings.HasSuffix(marker, delimiter) && strings.HasPrefix(key, marker))
}

// ListBucketVersions lists every version and delete marker, keys in order
// and each key's versions newest first, as S3 does, with NextKeyMarker and
// NextVersionIdMarker for the next page.
func (b *memBackend) ListBucketVersions(bucketName string, prefix *gofakes3.Prefix, page *gofakes3.ListBucketVersionsPage) (*gofakes3.ListBucketVersionsResult, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	if page == nil {
		page = &gofakes3.ListBucketVersionsPage{}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	result := gofakes3.NewListBucketVersionsResult(bucketName, prefix, page)
	// Resuming inside KeyMarker's history means skipping up to and including
	// VersionIDMarker.
	skipUntil := storedVersionID(page.VersionIDMarker)
	var (
		count int64
		last  *memVersion
		match gofakes3.PrefixMatch
	)
	for _, key := range slices.Sorted(maps.Keys(bk.keys)) {
		if !prefix.Match(key, &match) || (page.KeyMarker != "" && key < page.KeyMarker) {
			continue
		}
		if match.CommonPrefix {
			result.AddPrefix(match.MatchedPart)
			continue
		}
		history := bk.keys[key]
		skipping := key == page.KeyMarker
		for i := len(history) - 1; i >= 0; i-- {
			v := history[i]
			if skipping {
				skipping = !page.HasVersionIDMarker || v.id != skipUntil
				continue
			}
			if page.MaxKeys > 0 && count == page.MaxKeys {
				result.IsTruncated = true
				result.NextKeyMarker = last.key
				result.NextVersionIDMarker = nullVersion(last.id)
				return result, nil
			}
			result.Versions = append(result.Versions, v.listEntry(i == len(history)-1))
			last = v
			count++
		}
	}
	return result, nil
}

func nullVersion(id gofakes3.VersionID) gofakes3.VersionID {
	if id == "" {
		return "null"
	}
	return id
}

func (v *memVersion) listEntry(latest bool) gofakes3.VersionItem {
	modified := gofakes3.NewContentTime(v.lastModified)
	if v.deleteMarker {
		return &gofakes3.DeleteMarker{Key: v.key, VersionID: v.id, IsLatest: latest, LastModified: modified}
	}
	return &gofakes3.Version{
		Key: v.key, VersionID: v.id, IsLatest: latest, LastModified: modified,
		Size: int64(len(v.body)), ETag: gofakes3.FormatETag(v.hash),
	}
}
