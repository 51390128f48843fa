package format

// The one-line messages of gnt-job, gnt-cluster queue and gnt-debug delay.
// None of them ends in a newline.

// JobSubmitted is what `gnt-debug delay --submit` prints: "JobID: 6039".
func JobSubmitted(jobID any) string { return "JobID: " + intStr(jobID) }

// ArchiveFailed is what `gnt-job archive` prints to stderr for a job it
// could not archive: "Failed to archive job with ID '999999'".
func ArchiveFailed(jobID any) string {
	return "Failed to archive job with ID '" + intStr(jobID) + "'"
}

// AutoArchived is what `gnt-job autoarchive` prints: "Archived 0 jobs, 0
// unchecked left".
func AutoArchived(archived, left any) string {
	return "Archived " + intStr(archived) + " jobs, " + intStr(left) + " unchecked left"
}

// DrainFlag is what `gnt-cluster queue info` prints: "The drain flag is
// set" or "The drain flag is unset".
func DrainFlag(drained bool) string {
	if drained {
		return "The drain flag is set"
	}
	return "The drain flag is unset"
}

// JobWaitingInQueue is what job polling prints to stderr once when a job
// stays queued: "Job 6048 is waiting in queue".
func JobWaitingInQueue(jobID any) string {
	return "Job " + intStr(jobID) + " is waiting in queue"
}

// JobAcquiringLocks is what job polling prints to stderr once when a job
// stays waiting: "Job 6048 is trying to acquire all necessary locks".
func JobAcquiringLocks(jobID any) string {
	return "Job " + intStr(jobID) + " is trying to acquire all necessary locks"
}
