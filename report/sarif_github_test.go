package report

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// githubDoc is what GitHub code scanning reads from a SARIF log.
type githubDoc struct {
	Runs []struct {
		Tool struct {
			Driver struct {
				Name           string `json:"name"`
				InformationURI string `json:"informationUri"`
				Rules          []struct {
					ID               string `json:"id"`
					ShortDescription struct{ Text string }
					FullDescription  struct{ Text string }
					Help             struct{ Text, Markdown string }
					HelpURI          string `json:"helpUri"`
					Properties       struct {
						SecuritySeverity string   `json:"security-severity"`
						Tags             []string `json:"tags"`
					} `json:"properties"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		OriginalURIBaseIDs map[string]struct {
			URI string `json:"uri"`
		} `json:"originalUriBaseIds"`
		Results []struct {
			RuleID    string `json:"ruleId"`
			RuleIndex *int   `json:"ruleIndex"`
			Level     string `json:"level"`
			Message   struct{ Text string }
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct {
						URI       string `json:"uri"`
						URIBaseID string `json:"uriBaseId"`
					} `json:"artifactLocation"`
					Region *struct {
						ByteOffset *int64 `json:"byteOffset"`
						ByteLength *int64 `json:"byteLength"`
					} `json:"region"`
				} `json:"physicalLocation"`
			} `json:"locations"`
			PartialFingerprints map[string]string `json:"partialFingerprints"`
		} `json:"results"`
	} `json:"runs"`
}

// githubReport has a target under the working directory /work/ci (given
// relative, and its bytes' host file absolute), one outside it, and one
// that leaves it with "..".
func githubReport() *Report {
	r := emptyReport()
	web := "images/web01.qcow2"
	r.Targets = []Target{
		{Path: web, Format: "qcow2", Views: []View{{ID: "web01.qcow2#current", Kind: "current", Name: "current"}, {ID: "web01.qcow2#snapshot:golden", Kind: "snapshot", Name: "golden"}}},
		{Path: "/srv/other.qcow2", Format: "qcow2", Views: []View{{ID: "other.qcow2#current", Kind: "current", Name: "current"}}},
		{Path: "../up.raw", Format: "raw", Views: []View{{ID: "up.raw#current", Kind: "current", Name: "current"}}},
	}
	r.Findings = []Finding{
		{Rule: "private-key-openssh", Description: "OpenSSH private key", Category: "private-key", Severity: SeverityCritical, Fingerprint: fp("k"),
			Locations: []Location{
				{Target: web, View: "web01.qcow2#snapshot:golden", ViewKind: "snapshot", Offset: 0x6c1000, Length: 399, FileOffset: i64(0x90000), File: "/work/ci/images/web01.qcow2", State: StateAllocated, Exposure: ExposureSnapshot},
			}},
		{Rule: "github-pat", Description: "GitHub personal access token", Category: "code-hosting", Severity: SeverityMedium, Fingerprint: fp("t"),
			Locations: []Location{{Target: "/srv/other.qcow2", View: "other.qcow2#current", ViewKind: "current", Offset: 0x1000, Length: 40, State: StateAllocated, Exposure: ExposureLive, Path: "/root/.config/gh/hosts.yml"}}},
		{Rule: "url-credentials", Description: "Credentials in a URL", Category: "credentials", Severity: SeverityLow, Fingerprint: fp("u"),
			Locations: []Location{{Target: "../up.raw", View: "up.raw#current", ViewKind: "current", Offset: 0x2000, Length: 24, State: StateFree, Exposure: ExposureDeleted}}},
	}
	for i := range r.Findings {
		RecomputeExposure(&r.Findings[i])
	}
	return r
}

// TestSARIFFieldsGitHubReads: every field GitHub code scanning uses to
// show, deduplicate and rank an alert is there and says the right thing.
func TestSARIFFieldsGitHubReads(t *testing.T) {
	var out bytes.Buffer
	if err := writeSARIFIn(&out, githubReport(), "/work/ci"); err != nil {
		t.Fatal(err)
	}
	var doc githubDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	run := doc.Runs[0]
	if run.Tool.Driver.InformationURI != InformationURI {
		t.Errorf("driver.informationUri = %q", run.Tool.Driver.InformationURI)
	}
	if b, ok := run.OriginalURIBaseIDs[SARIFBaseID]; !ok || b.URI != "file:///work/ci/" {
		t.Errorf("originalUriBaseIds = %+v, want %s at file:///work/ci/", run.OriginalURIBaseIDs, SARIFBaseID)
	}
	rules := run.Tool.Driver.Rules
	for _, r := range rules {
		if r.ShortDescription.Text == "" || !strings.HasPrefix(r.FullDescription.Text, strings.TrimSuffix(r.ShortDescription.Text, ".")) {
			t.Errorf("rule %s: shortDescription %q, fullDescription %q", r.ID, r.ShortDescription.Text, r.FullDescription.Text)
		}
		if r.HelpURI != RulesDocURI+"#rule-"+r.ID {
			t.Errorf("rule %s: helpUri %q", r.ID, r.HelpURI)
		}
		for _, h := range []string{r.Help.Text, r.Help.Markdown} {
			if !strings.Contains(h, "qemu-img snapshot -d") || !strings.Contains(h, r.HelpURI) {
				t.Errorf("rule %s: help lacks the steps or the link:\n%s", r.ID, h)
			}
		}
		if v, err := strconv.ParseFloat(r.Properties.SecuritySeverity, 64); err != nil || v <= 0 || v > 10 {
			t.Errorf("rule %s: security-severity %q", r.ID, r.Properties.SecuritySeverity)
		}
		if len(r.Properties.Tags) == 0 || r.Properties.Tags[0] != "security" {
			t.Errorf("rule %s: tags %q", r.ID, r.Properties.Tags)
		}
	}
	want := map[string]struct {
		level, uri, base, inMessage string
		offset                      int64
	}{
		"private-key-openssh": {"error", "images/web01.qcow2", SARIFBaseID, "(snapshot) delete snapshot golden of images/web01.qcow2, then rewrite the image (freed clusters keep the bytes): qemu-img snapshot -d golden images/web01.qcow2", 0x90000},
		"github-pat":          {"warning", "file:///srv/other.qcow2", "", "(live) delete or replace /root/.config/gh/hosts.yml in the guest", 0x1000},
		"url-credentials":     {"note", "file:///work/up.raw", "", "(deleted) wipe free space in ../up.raw", 0x2000},
	}
	if len(run.Results) != len(want) {
		t.Fatalf("%d results", len(run.Results))
	}
	for _, res := range run.Results {
		w, ok := want[res.RuleID]
		if !ok {
			t.Errorf("unexpected result %s", res.RuleID)
			continue
		}
		if res.RuleIndex == nil || rules[*res.RuleIndex].ID != res.RuleID {
			t.Errorf("%s: ruleIndex %v does not point at its rule", res.RuleID, res.RuleIndex)
		}
		if res.Level != w.level {
			t.Errorf("%s: level %s, want %s", res.RuleID, res.Level, w.level)
		}
		if !strings.Contains(res.Message.Text, w.inMessage) {
			t.Errorf("%s: message lacks %q:\n%s", res.RuleID, w.inMessage, res.Message.Text)
		}
		if res.PartialFingerprints[SARIFFingerprintKey] == "" {
			t.Errorf("%s: no partialFingerprints", res.RuleID)
		}
		al := res.Locations[0].PhysicalLocation
		if al.ArtifactLocation.URI != w.uri || al.ArtifactLocation.URIBaseID != w.base {
			t.Errorf("%s: artifactLocation %+v, want uri %q uriBaseId %q", res.RuleID, al.ArtifactLocation, w.uri, w.base)
		}
		if al.Region == nil || al.Region.ByteOffset == nil || *al.Region.ByteOffset != w.offset || al.Region.ByteLength == nil || *al.Region.ByteLength <= 0 {
			t.Errorf("%s: region %+v, want byteOffset %#x", res.RuleID, al.Region, w.offset)
		}
	}
}
