//go:build linux

package csidriver

import (
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/google/go-cmp/cmp"
)

func TestParseVolumeParams(t *testing.T) {
	for name, tc := range map[string]struct {
		params  map[string]string
		want    volumeParams
		wantErr string
	}{
		"none":                  {},
		"operator's class":      {params: map[string]string{"type": "gp3", "encrypted": "true", "kmsKeyId": testKey}, want: volumeParams{Type: "gp3", Encrypted: true, KMSKeyID: testKey}},
		"sidecar passthrough":   {params: map[string]string{"csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/fstype": "ext4"}},
		"alias ARN":             {params: map[string]string{"encrypted": "true", "kmsKeyId": "arn:aws:kms:us-east-1:111122223333:alias/ws-a"}, want: volumeParams{Encrypted: true, KMSKeyID: "arn:aws:kms:us-east-1:111122223333:alias/ws-a"}},
		"encrypted false":       {params: map[string]string{"encrypted": "false"}},
		"encrypted no key":      {params: map[string]string{"encrypted": "true"}, wantErr: "encrypted=true needs kmsKeyId"},
		"key without encrypted": {params: map[string]string{"kmsKeyId": testKey}, wantErr: "without encrypted"},
		"key encrypted false":   {params: map[string]string{"kmsKeyId": testKey, "encrypted": "false"}, wantErr: "encrypted is false"},
		"key not an ARN":        {params: map[string]string{"encrypted": "true", "kmsKeyId": "0a1b2c3d"}, wantErr: "not a KMS key ARN"},
		"encrypted not bool":    {params: map[string]string{"encrypted": "yes please"}, wantErr: "must be"},
		"unknown type":          {params: map[string]string{"type": "fast"}, wantErr: "not an EBS volume type"},
		"unknown parameter":     {params: map[string]string{"iopsPerGB": "50"}, wantErr: `unknown parameter "iopsPerGB"`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseVolumeParams(tc.params)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("params (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInheritKey(t *testing.T) {
	encrypted := volumeParams{Encrypted: true, KMSKeyID: testKey}
	other := volumeParams{Encrypted: true, KMSKeyID: "arn:aws:kms:eu-west-2:111122223333:key/other"}
	for name, tc := range map[string]struct{ requested, source, want volumeParams }{
		"no key asked keeps the source's": {requested: volumeParams{Type: "gp3"}, source: encrypted, want: volumeParams{Type: "gp3", Encrypted: true, KMSKeyID: testKey}},
		"a named key wins, as EBS":        {requested: other, source: encrypted, want: other},
		"plain source stays plain":        {requested: volumeParams{}, source: volumeParams{}, want: volumeParams{}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, inheritKey(tc.requested, tc.source)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCapacity(t *testing.T) {
	for name, tc := range map[string]struct {
		required, limit, minimum, want int64
		wantErr                        bool
	}{
		"default":               {want: gib},
		"rounded up to a GiB":   {required: gib + 1, want: 2 * gib},
		"limit below next GiB":  {required: 100, limit: 200, want: 100},
		"source sets the floor": {minimum: 3 * gib, want: 3 * gib},
		"source above limit":    {minimum: 3 * gib, limit: 2 * gib, wantErr: true},
		"required above limit":  {required: 3, limit: 2, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := capacity(&csi.CapacityRange{RequiredBytes: tc.required, LimitBytes: tc.limit}, tc.minimum)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("capacity = %d, %v; want %d, error %t", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
