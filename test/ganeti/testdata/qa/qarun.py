"""Runs test functions of Ganeti's own QA suite (Debian's ganeti-testsuite,
/usr/share/ganeti/testsuite/qa), unchanged, against jobqd.

Usage: qarun.py QA_CONFIG TEST...

Run inside the private mount namespace of jobq's test (test/ganeti's
qa_test.go), where /var/run/ganeti/socket is jobqd's socket directory,
/var/lib/ganeti holds jobqd's RAPI certificate as rapi.pem, /etc/hosts
names the node, and the first "ssh" on PATH runs commands here (the QA
suite's only transport to the node; see ./ssh).

Each TEST is one of the names in TESTS. For each, one line
"QA-RESULT <name> PASS" or "QA-RESULT <name> FAIL <error>" is printed after
the test's own output; the exit status is the number of failed tests
(capped at 100).
"""

import sys
import time
import traceback

QA = "/usr/share/ganeti/testsuite"
sys.path[:0] = ["/usr/share/ganeti/default", QA, QA + "/qa"]

from ganeti import constants  # noqa: E402

from qa import qa_cluster  # noqa: E402
from qa import qa_config  # noqa: E402
from qa import qa_filters  # noqa: E402
from qa import qa_job  # noqa: E402
from qa import qa_performance  # noqa: E402
from qa import qa_rapi  # noqa: E402
from qa import qa_tags  # noqa: E402


def _rapi_query_queue_resources():
  """qa_rapi.TestRapiQuery over the queue's resources.

  TestRapiQuery walks constants.QR_VIA_RAPI, every resource Ganeti's RAPI
  queries (nodes, instances, groups, networks, exports too). jobqd has the
  job queue's: job, filter and lock. The function runs unchanged with the
  constant narrowed to those for its duration.
  """
  saved = constants.QR_VIA_RAPI
  constants.QR_VIA_RAPI = frozenset([constants.QR_JOB, constants.QR_FILTER,
                                     constants.QR_LOCK]) & saved
  try:
    qa_rapi.TestRapiQuery()
  finally:
    constants.QR_VIA_RAPI = saved


def _master():
  return qa_config.GetMasterNode()


# The QA tests run, in the order of ganeti-qa.py, with the arguments it
# gives them.
TESTS = {
  "qa_job.TestJobList": qa_job.TestJobList,
  "qa_cluster.TestJobqueue": qa_cluster.TestJobqueue,
  "qa_job.TestJobCancellation": qa_job.TestJobCancellation,
  "qa_job.TestJobListFields": qa_job.TestJobListFields,
  "qa_rapi.TestVersion": qa_rapi.TestVersion,
  "qa_rapi.TestRapiQuery": _rapi_query_queue_resources,
  "qa_filters.TestFilterList": qa_filters.TestFilterList,
  "qa_filters.TestFilterListFields": qa_filters.TestFilterListFields,
  "qa_filters.TestFilterAddRemove": qa_filters.TestFilterAddRemove,
  "qa_filters.TestFilterReject": qa_filters.TestFilterReject,
  "qa_filters.TestFilterOpCode": qa_filters.TestFilterOpCode,
  "qa_filters.TestFilterReasonChain": qa_filters.TestFilterReasonChain,
  "qa_filters.TestFilterContinue": qa_filters.TestFilterContinue,
  "qa_filters.TestFilterAcceptPause": qa_filters.TestFilterAcceptPause,
  "qa_filters.TestFilterWatermark": qa_filters.TestFilterWatermark,
  "qa_filters.TestFilterRateLimit": qa_filters.TestFilterRateLimit,
  "qa_filters.TestAdHocReasonRateLimit": qa_filters.TestAdHocReasonRateLimit,
  "qa_performance.TestJobQueueSubmissionPerformance":
    qa_performance.TestJobQueueSubmissionPerformance,
  "qa_tags.TestClusterTags": qa_tags.TestClusterTags,
  "qa_cluster.TestDelay": lambda: qa_cluster.TestDelay(_master()),
  "qa_tags.TestNodeTags": lambda: qa_tags.TestNodeTags(_master()),
  "qa_rapi.TestFilters": qa_rapi.TestFilters,
  "qa_rapi.TestEmptyCluster": qa_rapi.TestEmptyCluster,
}


def main(argv):
  if len(argv) < 3:
    sys.stderr.write(__doc__)
    return 2
  unknown = [n for n in argv[2:] if n not in TESTS]
  if unknown:
    sys.stderr.write("unknown QA tests %s; known: %s\n" %
                     (unknown, sorted(TESTS)))
    return 2
  qa_config.Load(argv[1])
  qa_rapi.SetupRapi()
  failed = 0
  for name in argv[2:]:
    print("QA-START %s" % name, flush=True)
    start = time.time()
    try:
      TESTS[name]()
    except Exception as err:  # pylint: disable=W0703
      failed += 1
      traceback.print_exc(file=sys.stdout)
      msg = " ".join(("%s: %s" % (type(err).__name__, err)).split())
      print("QA-RESULT %s FAIL %.1fs %s" % (name, time.time() - start,
                                            msg[:400]), flush=True)
    else:
      print("QA-RESULT %s PASS %.1fs" % (name, time.time() - start),
            flush=True)
  return min(failed, 100)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
