package idem

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func rec(at time.Time, digest string) Record {
	return Record{Key: "k", Digest: digest, At: [2]int64{at.Unix(), int64(at.Nanosecond() / 1000)}}
}

func TestDecide(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 123456000)
	w := 24 * time.Hour
	for _, c := range []struct {
		name  string
		r     Record
		found bool
		dig   string
		now   time.Time
		want  Outcome
	}{
		{"no record", Record{}, false, "a", t0, Submit},
		{"same body, just after", rec(t0, "a"), true, "a", t0.Add(time.Second), Replay},
		{"same body, same instant", rec(t0, "a"), true, "a", t0, Replay},
		{"same body, a microsecond before the window ends", rec(t0, "a"), true, "a", t0.Add(w - time.Microsecond), Replay},
		{"same body, the window's end", rec(t0, "a"), true, "a", t0.Add(w), Submit},
		{"same body, after the window", rec(t0, "a"), true, "a", t0.Add(w + time.Hour), Submit},
		{"other body, within", rec(t0, "a"), true, "b", t0.Add(time.Hour), Conflict},
		{"other body, after the window", rec(t0, "a"), true, "b", t0.Add(w), Submit},
		{"a record from the future (a master's clock ahead)", rec(t0.Add(time.Hour), "a"), true, "a", t0, Replay},
		{"other body, record from the future", rec(t0.Add(time.Hour), "a"), true, "b", t0, Conflict},
	} {
		if got := Decide(c.r, c.found, c.dig, c.now, w); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// The decision depends on the record's time and the asking time only:
// shifting both by the same amount changes nothing (no other clock).
func TestDecideShiftInvariant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := time.Unix(rapid.Int64Range(0, 4e9).Draw(t, "base"), 0)
		off := time.Duration(rapid.Int64Range(-1e15, 1e15).Draw(t, "off"))
		shift := time.Duration(rapid.Int64Range(-1e15, 1e15).Draw(t, "shift")).Truncate(time.Microsecond)
		w := time.Duration(rapid.Int64Range(1, 1e15).Draw(t, "w"))
		same := rapid.Bool().Draw(t, "same")
		d := "x"
		if !same {
			d = "y"
		}
		a := Decide(rec(base, "x"), true, d, base.Add(off), w)
		b := Decide(rec(base.Add(shift), "x"), true, d, base.Add(off).Add(shift), w)
		if a != b {
			t.Fatalf("shifted by %v: %v vs %v", shift, a, b)
		}
		if a == Replay && !same || a == Conflict && same {
			t.Fatalf("outcome %v for same=%v", a, same)
		}
	})
}

func TestDigest(t *testing.T) {
	d := func(jobs [][]json.RawMessage, opts string) string {
		t.Helper()
		s, err := Digest(jobs, json.RawMessage(opts))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	op := func(s string) json.RawMessage { return json.RawMessage(s) }
	a := d([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":1}`)}}, `{"timeout":5}`)
	for _, same := range []string{
		d([][]json.RawMessage{{op(`{ "duration" : 1, "OP_ID":"OP_TEST_DELAY" }`)}}, `{"timeout": 5}`),
	} {
		if same != a {
			t.Error("the same body encoded otherwise has another digest")
		}
	}
	for name, other := range map[string]string{
		"another duration":    d([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":2}`)}}, `{"timeout":5}`),
		"1 vs 1.0":            d([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":1.0}`)}}, `{"timeout":5}`),
		"another timing":      d([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":1}`)}}, `{"timeout":6}`),
		"no timing":           d([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":1}`)}}, ``),
		"two jobs of one op":  d([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":1}`)}, {}}, `{"timeout":5}`),
		"one job of two ops":  d([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":1}`), op(`{}`)}}, `{"timeout":5}`),
		"ops split otherwise": d([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":1}`)}, {op(`{}`)}}, `{"timeout":5}`),
	} {
		if other == a {
			t.Errorf("%s: same digest", name)
		}
	}
	if _, err := Digest([][]json.RawMessage{{op(`{"a":`)}}, nil); err == nil {
		t.Error("a digest of invalid JSON")
	}
}

func TestCheckKey(t *testing.T) {
	for _, ok := range []string{"a", "0f8fad5b-d9cb-469f-a165-70867728950e", "job:nightly.2026-12-07_x", strings.Repeat("k", MaxKeyLen)} {
		if err := CheckKey(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "a b", "tab\t", "new\nline", "é", strings.Repeat("k", MaxKeyLen+1), "\x00"} {
		if err := CheckKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSplitOptions(t *testing.T) {
	for _, c := range []struct {
		in, key, rest, err string
	}{
		{`{"idempotency_key":"k1","timeout":5}`, "k1", `{"timeout":5}`, ""},
		{`{"timeout":5}`, "", `{"timeout":5}`, ""},
		{`null`, "", `null`, ""},
		{`{"idempotency_key":5}`, "", "", "must be a string"},
		{`{"idempotency_key":""}`, "", "", "empty"},
		{`{"idempotency_key":"a b"}`, "", "", "printable ASCII"},
		{`[1]`, "", `[1]`, ""}, // the timing's parser refuses it
	} {
		key, rest, err := SplitOptions(json.RawMessage(c.in))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.in, err, c.err)
			}
		case err != nil || key != c.key || string(rest) != c.rest:
			t.Errorf("%s: %q %s %v, want %q %s", c.in, key, rest, err, c.key, c.rest)
		}
	}
}

func TestIndex(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	x := NewIndex()
	r := Record{Key: "k", Digest: "a", At: [2]int64{t0.Unix(), 0}, Count: 3}
	r0, r2 := r, r
	r0.Index, r2.Index = 0, 2
	x.Add(r2, 12)
	x.Add(r0, 10)
	e, ok := x.Lookup("k")
	if !ok || len(e.IDs) != 3 || e.IDs[0] != 10 || e.IDs[1] != 0 || e.IDs[2] != 12 {
		t.Fatalf("entry %+v %v", e, ok)
	}
	// An older submission's record (read from the archive after a newer
	// one) does not replace the newer one.
	old := Record{Key: "k", Digest: "b", At: [2]int64{t0.Unix() - 100, 0}, Count: 1}
	x.Add(old, 5)
	if e, _ := x.Lookup("k"); e.Digest != "a" {
		t.Fatalf("an older record replaced the newer: %+v", e)
	}
	// A newer one does (the first one's window ended, the key was reused).
	newer := Record{Key: "k", Digest: "c", At: [2]int64{t0.Unix() + 100000, 0}, Count: 1}
	x.Add(newer, 99)
	if e, _ := x.Lookup("k"); e.Digest != "c" || e.IDs[0] != 99 {
		t.Fatalf("a newer record did not replace: %+v", e)
	}
	x.Prune(t0.Add(100000*time.Second+time.Hour), time.Hour)
	if x.Len() != 0 {
		t.Fatalf("%d keys after the window", x.Len())
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s",
		time.Hour + time.Second: "1h0m1s", 45 * time.Second: "45s", 2 * time.Minute: "2m"} {
		if got := shortDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
