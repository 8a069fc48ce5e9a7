package backup

import "testing"

func TestParseLocation(t *testing.T) {
	for in, want := range map[string]Location{
		"eu-west-1=wso-acme-backup-x,alias/workspace-operator/acme":    {Region: "eu-west-1", Bucket: "wso-acme-backup-x", Key: "alias/workspace-operator/acme"},
		"us-gov-west-1=bucket.with.dots":                               {Region: "us-gov-west-1", Bucket: "bucket.with.dots"},
		"eu-central-1=b12,arn:aws:kms:eu-central-1:000000000000:key/k": {Region: "eu-central-1", Bucket: "b12", Key: "arn:aws:kms:eu-central-1:000000000000:key/k"},
	} {
		got, err := ParseLocation(in)
		if err != nil || got != want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "eu-west-1", "eu-west-1:bucket", "=bucket", "Europe=bucket", "eu-west-1=", "eu-west-1=Bucket", "eu-west-1=b"} {
		if l, err := ParseLocation(in); err == nil {
			t.Errorf("ParseLocation(%q) = %+v, want an error", in, l)
		}
	}
}
