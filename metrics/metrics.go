// Package metrics exposes recsink's Prometheus metrics. Names follow the
// Prometheus conventions (recsink_ prefix, _total, _bytes, _seconds); no
// label carries a tenant's secret or an unbounded value: there are no
// organization, recording or key labels.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source reports live figures that are read at scrape time.
type Source interface {
	// ActiveRecordings counts running recordings by state.
	ActiveRecordings() map[string]int
	// SpoolBytes returns the bytes in use and the limit of the spool.
	SpoolBytes() (used, limit int64)
	// DrainingCredentials counts replaced keys still held by recordings.
	DrainingCredentials(ctx context.Context) (int, error)
}

// FailingSource is a Source that also counts the saved keys and roles the
// key health watch found failing (the service implements it).
type FailingSource interface {
	FailingCredentials(ctx context.Context) (int, error)
}

// Disk reports the spool disk's free space and the headroom the spool keeps
// on it (it refuses new media below it): the spool implements it.
type Disk interface {
	// DiskFree returns the bytes free on the spool's disk; -1 when unknown.
	DiskFree() int64
	// Headroom returns the free space the spool leaves on its disk.
	Headroom() int64
}

// Metrics holds recsink's collectors on their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	received       prometheus.Counter
	uploaded       prometheus.Counter
	partDuration   prometheus.Histogram
	uploadErrors   *prometheus.CounterVec
	finished       *prometheus.CounterVec
	webhooks       *prometheus.CounterVec
	sourceDesc     *prometheus.Desc
	spoolUsedDesc  *prometheus.Desc
	spoolLimitDesc *prometheus.Desc
	drainingDesc   *prometheus.Desc
	failingDesc    *prometheus.Desc
	diskFreeDesc   *prometheus.Desc
	headroomDesc   *prometheus.Desc
	source         Source
	disk           Disk
}

// New returns the metrics, reading live figures from src (which may be set
// later with SetSource).
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recsink_received_bytes_total", Help: "Bytes of media received from recorders and synced to the spool.",
		}),
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recsink_uploaded_bytes_total", Help: "Bytes of media confirmed by S3 in uploaded parts.",
		}),
		partDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "recsink_part_upload_duration_seconds", Help: "Time to upload one part to S3, including the SDK's retries.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
		uploadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsink_upload_errors_total", Help: "Failed part uploads by S3 error code (or network, internal, other).",
		}, []string{"code"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsink_recordings_finished_total", Help: "Recordings that ended, by final state.",
		}, []string{"state"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsink_webhook_deliveries_total", Help: "Webhook delivery attempts by event type and outcome.",
		}, []string{"type", "outcome"}),
		sourceDesc:     prometheus.NewDesc("recsink_recordings", "Running recordings by state.", []string{"state"}, nil),
		spoolUsedDesc:  prometheus.NewDesc("recsink_spool_bytes", "Bytes held in the local spool until S3 confirms them.", nil, nil),
		spoolLimitDesc: prometheus.NewDesc("recsink_spool_limit_bytes", "The spool's size limit (0: none).", nil, nil),
		drainingDesc:   prometheus.NewDesc("recsink_credentials_draining", "Replaced access keys still held by running recordings.", nil, nil),
		failingDesc:    prometheus.NewDesc("recsink_credentials_failing", "Saved keys and roles in use whose last health check failed.", nil, nil),
		diskFreeDesc:   prometheus.NewDesc("recsink_spool_disk_free_bytes", "Bytes free on the spool's disk; new media is refused (503) below recsink_spool_disk_headroom_bytes.", nil, nil),
		headroomDesc:   prometheus.NewDesc("recsink_spool_disk_headroom_bytes", "Free space the spool keeps on its disk (--disk-headroom), so that the database can still record the parts that free the spool.", nil, nil),
	}
	m.Registry.MustRegister(m.received, m.uploaded, m.partDuration, m.uploadErrors, m.finished, m.webhooks, m,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetSource sets where the live figures come from.
func (m *Metrics) SetSource(src Source) { m.source = src }

// SetDisk sets where the spool disk's figures come from; set it before the
// metrics are served.
func (m *Metrics) SetDisk(d Disk) { m.disk = d }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Received counts media bytes synced to the spool.
func (m *Metrics) Received(n int64) { m.received.Add(float64(n)) }

// PartUploaded counts a part confirmed by S3.
func (m *Metrics) PartUploaded(n int64, took time.Duration) {
	m.uploaded.Add(float64(n))
	m.partDuration.Observe(took.Seconds())
}

// UploadFailed counts a failed part upload by its (bounded) error code.
func (m *Metrics) UploadFailed(code string) { m.uploadErrors.WithLabelValues(code).Inc() }

// RecordingFinished counts a recording that ended in state.
func (m *Metrics) RecordingFinished(state string) { m.finished.WithLabelValues(state).Inc() }

// Delivered counts a webhook delivery attempt's outcome.
func (m *Metrics) Delivered(typ, outcome string) { m.webhooks.WithLabelValues(typ, outcome).Inc() }

// Describe implements prometheus.Collector for the live figures.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.sourceDesc
	ch <- m.spoolUsedDesc
	ch <- m.spoolLimitDesc
	ch <- m.drainingDesc
	ch <- m.failingDesc
	ch <- m.diskFreeDesc
	ch <- m.headroomDesc
}

// Collect implements prometheus.Collector for the live figures.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	if m.disk != nil {
		if free := m.disk.DiskFree(); free >= 0 {
			ch <- prometheus.MustNewConstMetric(m.diskFreeDesc, prometheus.GaugeValue, float64(free))
		}
		ch <- prometheus.MustNewConstMetric(m.headroomDesc, prometheus.GaugeValue, float64(m.disk.Headroom()))
	}
	if m.source == nil {
		return
	}
	active := m.source.ActiveRecordings()
	for _, state := range []string{"recording", "blocked", "stopping"} {
		ch <- prometheus.MustNewConstMetric(m.sourceDesc, prometheus.GaugeValue, float64(active[state]), state)
	}
	used, limit := m.source.SpoolBytes()
	ch <- prometheus.MustNewConstMetric(m.spoolUsedDesc, prometheus.GaugeValue, float64(used))
	ch <- prometheus.MustNewConstMetric(m.spoolLimitDesc, prometheus.GaugeValue, float64(limit))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := m.source.DrainingCredentials(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(m.drainingDesc, prometheus.GaugeValue, float64(n))
	}
	if f, ok := m.source.(FailingSource); ok {
		if n, err := f.FailingCredentials(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(m.failingDesc, prometheus.GaugeValue, float64(n))
		}
	}
}
