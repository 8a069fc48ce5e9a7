package backup

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Location is a bucket in a region that holds a copy of every backup,
// with the KMS key backups there are encrypted under.
type Location struct {
	Region string
	Bucket string
	// Key is the workspace's KMS key in Region: key ID, key ARN, alias
	// name (alias/workspace-operator/acme) or alias ARN. Backups need it;
	// restores pass it to KMS Decrypt when set, so that a data key under
	// any other key is refused.
	Key string
}

var (
	regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$`)
	bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// ParseLocation parses region=bucket[,key], the syntax of --location.
func ParseLocation(s string) (Location, error) {
	region, rest, ok := strings.Cut(s, "=")
	if !ok {
		return Location{}, fmt.Errorf("location %q: want region=bucket[,key]", s)
	}
	bucket, key, _ := strings.Cut(rest, ",")
	l := Location{Region: region, Bucket: bucket, Key: key}
	if !regionPattern.MatchString(l.Region) {
		return Location{}, fmt.Errorf("location %q: %q is not an AWS region", s, l.Region)
	}
	if !bucketPattern.MatchString(l.Bucket) {
		return Location{}, fmt.Errorf("location %q: %q is not an S3 bucket name", s, l.Bucket)
	}
	return l, nil
}

// String is the location's region=bucket, which logs and errors name it by.
func (l Location) String() string { return l.Region + "=" + l.Bucket }

// LogValue logs a location as region=bucket.
func (l Location) LogValue() slog.Value { return slog.StringValue(l.String()) }

// site is a location with its clients.
type site struct {
	Location
	kms KMS
	s3  S3
}

// connect builds the clients of every location.
func connect(ctx context.Context, clients Clients, locations []Location) ([]*site, error) {
	sites := make([]*site, len(locations))
	for i, l := range locations {
		k, s, err := clients(ctx, l.Region)
		if err != nil {
			return nil, fmt.Errorf("location %s: %w", l, err)
		}
		sites[i] = &site{Location: l, kms: k, s3: s}
	}
	return sites, nil
}
