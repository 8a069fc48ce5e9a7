package backup

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSummaryFitsTheTerminationMessage(t *testing.T) {
	long := strings.Repeat("a very long error message é ", 400)
	for _, locations := range []int{2, 8, 40} {
		sum := &Summary{Workspace: testWorkspace, BackupID: "20300301T020000Z", Status: StatusFailed, Error: long}
		for range locations {
			sum.Locations = append(sum.Locations, LocationSummary{Region: "eu-west-1", Bucket: strings.Repeat("b", 63), Error: long, Backups: 7, Newest: "20300301T020000Z", Oldest: "20300222T020000Z"})
		}
		out := sum.Marshal()
		if len(out) > MaxSummarySize {
			t.Errorf("%d locations: summary has %d bytes, limit %d", locations, len(out), MaxSummarySize)
		}
		var back Summary
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%d locations: summary is not JSON: %v", locations, err)
		}
		if back.Status != StatusFailed || back.BackupID != sum.BackupID || back.Error == "" {
			t.Errorf("%d locations: summary lost its essentials: %+v", locations, back)
		}
		if locations <= 8 && len(back.Locations) != locations {
			t.Errorf("%d locations: summary kept %d", locations, len(back.Locations))
		}
	}
}

func TestSummaryKeepsShortErrorsWhole(t *testing.T) {
	sum := &Summary{Status: StatusFailed, Error: "location eu-west-1=b: AccessDenied", Locations: []LocationSummary{{Region: "eu-west-1", Bucket: "b", Error: "AccessDenied"}}}
	var back Summary
	if err := json.Unmarshal(sum.Marshal(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Error != sum.Error || back.Locations[0].Error != "AccessDenied" {
		t.Errorf("summary = %+v", back)
	}
}
