package integration

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
)

func scrapeMetrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func metricValue(t *testing.T, text, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The counters move with the work done.
func TestMetricsMove(t *testing.T) {
	n := startNode(t, t.TempDir(), "--metrics-addr", "127.0.0.1:0")
	addr := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`).FindStringSubmatch(n.Logs())
	if addr == nil {
		t.Fatalf("no metrics address in the log:\n%s", n.Logs())
	}
	url := "http://" + addr[1] + "/metrics"
	before := scrapeMetrics(t, url)
	c := n.client()
	for _, d := range []float64{0.001, 0, 0.001} {
		id := submit(t, c, delayOp(d))
		waitFor(t, c, id, final)
	}
	after := scrapeMetrics(t, url)
	for _, m := range []struct {
		name string
		want float64
	}{
		{"jobq_jobs_submitted_total", 3},
		{`jobq_jobs_finished_total{status="success"}`, 2},
		{`jobq_jobs_finished_total{status="error"}`, 1},
		{`jobq_opcode_duration_seconds_count{op_id="OP_TEST_DELAY"}`, 2},
		{`jobq_jobs{status="success"}`, 2},
	} {
		if got := metricValue(t, after, m.name) - metricValue(t, before, m.name); got != m.want {
			t.Errorf("%s moved by %v, want %v", m.name, got, m.want)
		}
	}
	if metricValue(t, after, "jobq_store_batch_changes_count") <= metricValue(t, before, "jobq_store_batch_changes_count") {
		t.Error("no group commit counted")
	}
}
