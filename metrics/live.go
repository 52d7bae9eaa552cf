package metrics

import "github.com/prometheus/client_golang/prometheus"

// Live counts live publishes (RTMP, SRT) by protocol: those live now and
// every one started. It implements service.LiveObserver.
type Live struct {
	live    *prometheus.GaugeVec
	started *prometheus.CounterVec
}

// NewLive returns the live-publish metrics, registered on m's registry.
func (m *Metrics) NewLive() *Live {
	l := &Live{
		live: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recsink_live_publishes",
			Help: "Live publishes connected now, by protocol (a dropped one in its grace period is not counted).",
		}, []string{"protocol"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsink_live_publishes_total",
			Help: "Live publishes accepted, by protocol (a reconnect within the grace period counts again).",
		}, []string{"protocol"}),
	}
	m.Registry.MustRegister(l.live, l.started)
	return l
}

// PublishStarted counts a publish that was accepted.
func (l *Live) PublishStarted(protocol string) {
	l.live.WithLabelValues(protocol).Inc()
	l.started.WithLabelValues(protocol).Inc()
}

// PublishEnded counts a publish that ended or dropped.
func (l *Live) PublishEnded(protocol string) {
	l.live.WithLabelValues(protocol).Dec()
}
