package settings

import (
	"context"
	"testing"
)

func TestLocalSetGetWatchReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	l.Watch(func(k string, v []byte) { seen = append(seen, k+"="+string(v)) })
	ctx := context.Background()
	if err := l.Set(ctx, "filters", []byte(`[1]`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ k, v string }{{"Filters", `1`}, {"", `1`}, {"a/b", `1`}, {"x", `{`}} {
		if err := l.Set(ctx, bad.k, []byte(bad.v)); err == nil {
			t.Errorf("Set(%q, %q) succeeded", bad.k, bad.v)
		}
	}
	if got := string(l.Get("filters")); got != `[1]` {
		t.Fatalf("Get = %q", got)
	}
	if len(seen) != 1 || seen[0] != "filters=[1]" {
		t.Fatalf("watched %v", seen)
	}
	l2, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(l2.Get("filters")); got != `[1]` {
		t.Fatalf("after reopen Get = %q", got)
	}
	if l2.Get("none") != nil {
		t.Fatal("unset key is not nil")
	}
}
