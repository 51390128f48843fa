// Package metrics holds jobqd's Prometheus metrics. The queue engine and
// the store report events through a *Set (nil-safe: a nil *Set records
// nothing); the daemon serves Registry() at /metrics.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set is one daemon's metrics.
type Set struct {
	reg *prometheus.Registry

	submitted   prometheus.Counter
	finished    *prometheus.CounterVec
	opDuration  *prometheus.HistogramVec
	syncSeconds prometheus.Histogram
	batchSize   prometheus.Histogram
	lockWait    prometheus.Histogram
	waiters     prometheus.Gauge
}

// New makes a Set. queueDepth is called at scrape time for the number of
// live jobs by status, running for the number of executing jobs.
func New(queueDepth func() map[string]int, running func() int) *Set {
	s := &Set{reg: prometheus.NewRegistry()}
	s.submitted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobq_jobs_submitted_total", Help: "Jobs accepted (stored durably and acknowledged).",
	})
	s.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobq_jobs_finished_total", Help: "Jobs that reached a final status, by status.",
	}, []string{"status"})
	s.opDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "jobq_opcode_duration_seconds", Help: "Time opcodes spent executing (after their locks), by OP_ID.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"op_id"})
	s.syncSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "jobq_store_commit_seconds", Help: "Time one group commit of the queue store took (temporary files, syncs, renames).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	s.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "jobq_store_batch_changes", Help: "File changes made durable together by one group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	s.lockWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "jobq_lock_wait_seconds", Help: "Time opcodes waited for their locks (waits that had to block).",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
	s.waiters = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jobq_waitforjobchange_waiters", Help: "WaitForJobChange calls in progress.",
	})
	depth := prometheus.NewDesc("jobq_jobs", "Live (not archived) jobs by status.", []string{"status"}, nil)
	runningDesc := prometheus.NewDesc("jobq_running_jobs", "Jobs whose opcode is executing or waiting in a worker.", nil, nil)
	s.reg.MustRegister(s.submitted, s.finished, s.opDuration, s.syncSeconds, s.batchSize, s.lockWait, s.waiters,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectorFunc{descs: []*prometheus.Desc{depth, runningDesc}, collect: func(ch chan<- prometheus.Metric) {
			counts := queueDepth()
			for _, st := range []string{"queued", "waiting", "canceling", "running", "canceled", "success", "error"} {
				ch <- prometheus.MustNewConstMetric(depth, prometheus.GaugeValue, float64(counts[st]), st)
			}
			ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(running()))
		}})
	return s
}

type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// Handler serves the metrics in Prometheus' text format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// JobsSubmitted counts acknowledged jobs.
func (s *Set) JobsSubmitted(n int) {
	if s != nil {
		s.submitted.Add(float64(n))
	}
}

// JobFinished counts a job that reached a final status.
func (s *Set) JobFinished(status string) {
	if s != nil {
		s.finished.WithLabelValues(status).Inc()
	}
}

// OpcodeDone records an opcode's execution time.
func (s *Set) OpcodeDone(opID string, d time.Duration) {
	if s != nil {
		s.opDuration.WithLabelValues(opID).Observe(d.Seconds())
	}
}

// Committed records one group commit of the store.
func (s *Set) Committed(changes int, d time.Duration) {
	if s != nil {
		s.batchSize.Observe(float64(changes))
		s.syncSeconds.Observe(d.Seconds())
	}
}

// LockWaited records a wait for locks.
func (s *Set) LockWaited(d time.Duration) {
	if s != nil {
		s.lockWait.Observe(d.Seconds())
	}
}

// Waiter counts a WaitForJobChange call in (+1) and out (-1).
func (s *Set) Waiter(delta int) {
	if s != nil {
		s.waiters.Add(float64(delta))
	}
}

// Replica is a member of the cluster's log as the master sees it.
type Replica struct {
	Node   string
	InSync bool  // it holds every committed entry
	Behind int64 // committed entries it does not hold yet
}

// ClusterState is what the cluster metrics report at scrape time.
type ClusterState struct {
	Master        bool   // this node runs the queue
	Epoch         int64  // the configuration's epoch (the Raft term)
	LeaderChanges uint64 // leader changes this node has seen since it started
	Replicas      []Replica
}

// EnableCluster adds the cluster metrics; state is called at scrape time.
func (s *Set) EnableCluster(state func() ClusterState) {
	if s == nil {
		return
	}
	master := prometheus.NewDesc("jobq_master", "1 while this node runs the queue as the master.", nil, nil)
	epoch := prometheus.NewDesc("jobq_cluster_epoch", "The master's term (epoch) as this node knows it.", nil, nil)
	changes := prometheus.NewDesc("jobq_leader_changes_total", "Changes of the master (the Raft leader) this node has seen since it started.", nil, nil)
	inSync := prometheus.NewDesc("jobq_replica_in_sync", "1 when the member holds every committed log entry (master only), by node.", []string{"node"}, nil)
	behind := prometheus.NewDesc("jobq_replica_behind_entries", "Committed log entries the member does not hold yet (master only), by node.", []string{"node"}, nil)
	s.reg.MustRegister(collectorFunc{
		descs: []*prometheus.Desc{master, epoch, changes, inSync, behind},
		collect: func(ch chan<- prometheus.Metric) {
			st := state()
			ch <- prometheus.MustNewConstMetric(master, prometheus.GaugeValue, b2f(st.Master))
			ch <- prometheus.MustNewConstMetric(epoch, prometheus.GaugeValue, float64(st.Epoch))
			ch <- prometheus.MustNewConstMetric(changes, prometheus.CounterValue, float64(st.LeaderChanges))
			for _, r := range st.Replicas {
				ch <- prometheus.MustNewConstMetric(inSync, prometheus.GaugeValue, b2f(r.InSync), r.Node)
				ch <- prometheus.MustNewConstMetric(behind, prometheus.GaugeValue, float64(r.Behind), r.Node)
			}
		}})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
