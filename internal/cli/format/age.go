package format

import (
	"errors"
	"time"

	"github.com/jobq-dev/jobq/internal/duration"
)

// AgeAll is what ParseAge returns for "all": archive every finished job,
// whatever its age (LUXI's AutoArchiveJobs takes -1 for it).
const AgeAll int64 = -1

// ParseAge parses the AGE argument of `jobq autoarchive`: a duration as
// every duration on jobq's command line (package duration: seconds, as
// Ganeti's ParseTimespec takes them, "30s", "15m", "1h", "2d", "1w",
// "1h30m"), in whole seconds, or the word "all", which gives AgeAll. The
// error is one sentence.
func ParseAge(s string) (int64, error) {
	if s == "all" {
		return AgeAll, nil
	}
	d, err := duration.Parse(s)
	if err != nil {
		var de *duration.Error
		if errors.As(err, &de) {
			de.What = "age"
			if de.Reason == "" {
				de.Reason = duration.Forms + `, or "all"`
			}
		}
		return 0, err
	}
	return int64(d / time.Second), nil
}
