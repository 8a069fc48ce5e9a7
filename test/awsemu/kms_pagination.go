package awsemu

import (
	"encoding/base64"
	"net/http"
	"sort"
)

// paginate returns the page of items (sorted by sortKey) starting at marker,
// and the marker of the next page. Markers are the opaque base64 of the next
// item's sort key, so pages stay consistent when items are added or removed
// between calls.
func paginate[T any](items []T, sortKey func(T) string, limit *int32, maxLimit int32, marker string) ([]T, string, error) {
	size := int32(100)
	if maxLimit < size {
		size = maxLimit
	}
	if limit != nil {
		if *limit < 1 || *limit > maxLimit {
			return nil, "", kmsValidationError(
				"1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *limit, maxLimit)
		}
		size = *limit
	}
	start := 0
	if marker != "" {
		from, err := base64.RawURLEncoding.DecodeString(marker)
		if err != nil {
			return nil, "", newError(http.StatusBadRequest, "InvalidMarkerException", "Invalid marker %q", marker)
		}
		start = sort.Search(len(items), func(i int) bool { return sortKey(items[i]) >= string(from) })
	}
	end := min(start+int(size), len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(sortKey(items[end])))
	}
	return items[start:end], next, nil
}
