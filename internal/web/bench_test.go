package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/store"
)

// BenchmarkPages100k times the pages on a big queue made by jobq-bench:
//
//	jobq-bench --populate /tmp/big --live 100000
//	JOBQ_WEB_BENCH_DIR=/tmp/big go test -run - -bench Pages100k ./internal/web
//
// (the data directory must not be in use by a jobqd).
func BenchmarkPages100k(b *testing.B) {
	dir := os.Getenv("JOBQ_WEB_BENCH_DIR")
	if dir == "" {
		b.Skip("set JOBQ_WEB_BENCH_DIR to a data directory made by jobq-bench --populate")
	}
	st, err := store.Open(filepath.Join(dir, "queue"), nil)
	if err != nil {
		b.Fatal(err)
	}
	q, err := queue.Open(queue.Config{Store: st, NodeName: "node1"})
	if err != nil {
		st.Close()
		b.Fatal(err)
	}
	defer q.Shutdown(context.Background())
	users := &fakeUsers{}
	users.set(testUsers)
	h := New(Config{Queue: q, Users: users})
	s := h.sessions.create(users.LookupUser("viewer"))
	for _, path := range []string{"/ui/jobs", "/ui/jobs?status=error", "/ui/jobs?before=50000",
		"/ui/jobs?status=success&age=24h&n=500", "/ui/", "/ui/jobs/99999"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", path, nil)
				req.AddCookie(&http.Cookie{Name: CookieName, Value: s.id})
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d", path, w.Code)
				}
			}
		})
	}
}
