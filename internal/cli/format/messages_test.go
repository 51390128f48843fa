package format

import "testing"

func TestMessagesReference(t *testing.T) {
	for _, tc := range []struct {
		golden, got string
	}{
		{"cli-01-delay-submit-zero", JobSubmitted(decode(t, "6039"))},
		{"cli-03-delay-submit", JobSubmitted(6040)},
		{"cli-11-delay-submit-repeat", JobSubmitted(6046.0)},
		{"cli-35-job-archive-unknown", ArchiveFailed("999999")},
		{"cli-36-job-autoarchive-1h", AutoArchived(decode(t, "0"), decode(t, "0"))},
		{"cli-37-job-autoarchive-all", AutoArchived(0, 0)},
		{"cli-firstrun-29-queue-info", DrainFlag(false)},
		{"cli-firstrun-31-queue-info-drained", DrainFlag(true)},
		{"cli-firstrun-34-queue-info-undrained", DrainFlag(false)},
		{"cli-firstrun-39-job-autoarchive-1h", AutoArchived(0, 0)},
		{"cli-firstrun-40-job-autoarchive-all", AutoArchived(0, 0)},
	} {
		checkText(t, tc.golden, tc.got+"\n", golden(t, tc.golden))
	}
	if got := JobWaitingInQueue(6048); got != "Job 6048 is waiting in queue" {
		t.Errorf("JobWaitingInQueue = %q", got)
	}
	if got := JobAcquiringLocks(6048); got != "Job 6048 is trying to acquire all necessary locks" {
		t.Errorf("JobAcquiringLocks = %q", got)
	}
}
