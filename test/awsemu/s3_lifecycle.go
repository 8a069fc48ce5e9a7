package awsemu

import (
	"encoding/xml"
	"strings"
	"time"
)

// lifecycleRule is the part of a lifecycle rule the emulator executes: expiration of
// current versions after Days, of noncurrent versions after NoncurrentDays, and removal
// of expired delete markers, for rules filtered by prefix (or not at all). Rules filtered
// by tag or size, Expiration by Date, transitions and AbortIncompleteMultipartUpload are
// stored but never executed.
type lifecycleRule struct {
	Status string  `xml:"Status"`
	Prefix *string `xml:"Prefix"` // the legacy filter
	Filter *struct {
		Prefix                *string   `xml:"Prefix"`
		And                   *presence `xml:"And"`
		Tag                   *presence `xml:"Tag"`
		ObjectSizeGreaterThan *presence `xml:"ObjectSizeGreaterThan"`
		ObjectSizeLessThan    *presence `xml:"ObjectSizeLessThan"`
	} `xml:"Filter"`
	Expiration *struct {
		Days                      *int  `xml:"Days"`
		ExpiredObjectDeleteMarker *bool `xml:"ExpiredObjectDeleteMarker"`
	} `xml:"Expiration"`
	NoncurrentVersionExpiration *struct {
		NoncurrentDays *int `xml:"NoncurrentDays"`
	} `xml:"NoncurrentVersionExpiration"`
}

// prefix is the key prefix the rule applies to; ok is false for filters the emulator does
// not execute.
func (r lifecycleRule) prefix() (prefix string, ok bool) {
	switch f := r.Filter; {
	case f == nil && r.Prefix != nil:
		return *r.Prefix, true
	case f == nil:
		return "", true
	case f.And != nil || f.Tag != nil || f.ObjectSizeGreaterThan != nil || f.ObjectSizeLessThan != nil:
		return "", false
	case f.Prefix != nil:
		return *f.Prefix, true
	}
	return "", true
}

// lifecycleDue is when S3 acts on an object under a rule of days: the object's time plus
// the days, rounded up to the next midnight UTC.
func lifecycleDue(t time.Time, days int) time.Time {
	due := t.UTC().Add(time.Duration(days) * 24 * time.Hour)
	if midnight := due.Truncate(24 * time.Hour); !midnight.Equal(due) {
		return midnight.Add(24 * time.Hour)
	}
	return due
}

// expireObjects executes the bucket's lifecycle configuration as of the injected clock's
// now, before a request sees the bucket. S3 runs lifecycle asynchronously, up to a day or
// two late; the emulator acts at the first request after the due time, so a test that
// advances the clock sees the result at once.
func (s *s3Service) expireObjects(bucket string) {
	s.mu.Lock()
	st := s.buckets[bucket]
	var doc []byte
	if st != nil {
		doc = st.configs["lifecycle"]
	}
	s.mu.Unlock()
	if doc == nil {
		return
	}
	var cfg struct {
		Rules []lifecycleRule `xml:"Rule"`
	}
	if xml.Unmarshal(doc, &cfg) != nil {
		return // validated when put
	}
	s.backend.expire(bucket, cfg.Rules)
}

// expire applies lifecycle rules to a bucket's objects.
func (b *memBackend) expire(bucketName string, rules []lifecycleRule) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.buckets[bucketName]
	if bk == nil {
		return
	}
	now := b.clock.Now()
	for _, rule := range rules {
		prefix, ok := rule.prefix()
		if rule.Status != "Enabled" || !ok {
			continue
		}
		for key := range bk.keys {
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			b.expireKey(bk, key, rule, now)
		}
	}
}

func (b *memBackend) expireKey(bk *memBucket, key string, rule lifecycleRule, now time.Time) {
	if e := rule.Expiration; e != nil && e.Days != nil {
		// The current version expires: a delete marker in a versioned bucket, gone in an
		// unversioned one.
		if cur := bk.current(key); cur != nil && !cur.deleteMarker && !now.Before(lifecycleDue(cur.lastModified, *e.Days)) {
			b.deleteCurrent(bk, key)
		}
	}
	if n := rule.NoncurrentVersionExpiration; n != nil && n.NoncurrentDays != nil {
		history := bk.keys[key]
		kept := history[:0:0]
		for i, v := range history {
			// A version becomes noncurrent when the next one is written.
			if i < len(history)-1 && !now.Before(lifecycleDue(history[i+1].lastModified, *n.NoncurrentDays)) {
				continue
			}
			kept = append(kept, v)
		}
		bk.keys[key] = kept
	}
	if e := rule.Expiration; e != nil && e.ExpiredObjectDeleteMarker != nil && *e.ExpiredObjectDeleteMarker {
		if history := bk.keys[key]; len(history) == 1 && history[0].deleteMarker {
			delete(bk.keys, key)
		}
	}
	if len(bk.keys[key]) == 0 {
		delete(bk.keys, key)
	}
}
