package main_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/pgtest"
	"github.com/recsink/recsink/internal/s3spy"
	"github.com/recsink/recsink/internal/s3test"
)

// owCluster is the world of the one-writer tests: recsink processes on one
// PostgreSQL, S3 (versitygw) behind an s3spy proxy that names the node
// that sent each request, and an audit trigger that logs every write to a
// recording's row or parts with the node that made it.
//
// Attribution. Every node connects to PostgreSQL with its own
// application_name (recsink-node-N, in its DSN), which the trigger stores
// with each row it logs: the database itself says which node wrote. S3
// requests are named by the proxy from the sending process (see s3spy).
// Both hold whatever the code under test writes into owner columns.
type owCluster struct {
	S3     *s3test.Server
	Spy    *s3spy.Proxy
	Rcv    *Receiver
	DSN    string
	DB     *pgxpool.Pool
	APIKey string
	Key    recsink.AccessKey // owns Bucket
	Bucket string
	Nodes  []*Process
	IDs    []string // node IDs, as the recordings' owner_node holds them
}

const owLeaseTTL = time.Second

// mustOWCluster starts n nodes with --lease-ttl 1s; extra(i) adds flags to
// node i.
func mustOWCluster(t *testing.T, n int, extra func(i int) []string) *owCluster {
	t.Helper()
	c := &owCluster{S3: s3test.MustStart(t)}
	c.Spy = s3spy.MustStart(t, c.S3.Endpoint)
	c.Rcv = NewReceiver(t)
	c.DSN = pgtest.MustStart(t).MustCreateDatabase(t)
	c.Key = c.S3.CreateUser(t, "user")
	c.Bucket = c.S3.CreateBucket(t, c.Key.ID)
	c.APIKey = mustOrgCreate(t, "--db", c.DSN)
	masterKey := mustMasterKeyFile(t)
	for i := range n {
		args := []string{
			"--db", c.DSN + "&application_name=" + nodeApp(i),
			"--lease-ttl", owLeaseTTL.String(), "--master-key-file", masterKey,
			"--allow-endpoint", c.Spy.HostPort, "--allow-endpoint", c.Rcv.HostPort(),
		}
		if extra != nil {
			args = append(args, extra(i)...)
		}
		dir := t.TempDir()
		p := MustStartProcess(t, c.S3, dir, args...)
		c.Spy.Track(p.cmd.Process.Pid)
		id, err := os.ReadFile(filepath.Join(dir, "node-id"))
		if err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, p)
		c.IDs = append(c.IDs, strings.TrimSpace(string(id)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range c.Nodes {
				t.Logf("node %d (%s) log:\n%s", i, c.IDs[i], p.logs)
			}
		}
	})
	pool, err := pgxpool.New(context.Background(), c.DSN+"&application_name=onewriter-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c.DB = pool
	c.installAudit(t)
	c.Client(0).MustDo(t, 200, "PUT", "/v1/webhooks", map[string]any{"url": c.Rcv.URL + "/hooks"})
	return c
}

func nodeApp(i int) string { return "recsink-node-" + strconv.Itoa(i) }

// Client returns an API client of node i.
func (c *owCluster) Client(i int) *Client {
	return &Client{m: &TestMain{url: c.Nodes[i].URL(), S3: c.S3}, Key: c.APIKey}
}

// Storage returns a PUT /v1/storage body for bucket and key, through the
// proxy.
func (c *owCluster) Storage(bucket string, key recsink.AccessKey) map[string]any {
	return map[string]any{
		"bucket":          bucket,
		"endpoint":        c.Spy.Endpoint,
		"region":          s3test.Region,
		"forcePathStyle":  true,
		"accessKeyId":     key.ID,
		"accessKeySecret": key.Secret,
	}
}

// Meeting creates a meeting that ends in three hours: far enough for a
// node whose clock is an hour ahead.
func (c *owCluster) Meeting(t *testing.T) string {
	t.Helper()
	out := c.Client(0).MustDo(t, 201, "POST", "/v1/meetings", map[string]any{
		"endDate":        time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339),
		"roomNamePrefix": "standup",
	})
	return out["meetingId"].(string)
}

// Via returns r with its ingest URL on node i: the recorder talks to node
// i, which sends the media on to the owner.
func (c *owCluster) Via(r Started, i int) Started {
	r.IngestURL = c.Nodes[i].URL() + "/v1/recordings/" + r.ID + "/ingest"
	return r
}

// PID returns node i's process ID.
func (c *owCluster) PID(i int) int { return c.Nodes[i].cmd.Process.Pid }

// NodeOfPID returns the index of the node whose process is pid, or -1.
func (c *owCluster) NodeOfPID(pid int) int {
	for i := range c.Nodes {
		if c.PID(i) == pid {
			return i
		}
	}
	return -1
}

// NodeOfID returns the index of the node whose ID is id, or -1.
func (c *owCluster) NodeOfID(id string) int {
	for i, n := range c.IDs {
		if n == id {
			return i
		}
	}
	return -1
}

// Signal sends sig to node i.
func (c *owCluster) Signal(t *testing.T, i int, sig syscall.Signal) {
	t.Helper()
	if err := c.Nodes[i].cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to node %d: %v", sig, i, err)
	}
}

// installAudit adds the audit table and triggers: every INSERT, UPDATE and
// DELETE of a recording's row or parts is logged with the writer's
// application_name and the database's clock at the write.
func (c *owCluster) installAudit(t *testing.T) {
	t.Helper()
	_, err := c.DB.Exec(context.Background(), `
		CREATE TABLE onewriter_audit (
			seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			at           timestamptz NOT NULL DEFAULT clock_timestamp(),
			app          text NOT NULL DEFAULT current_setting('application_name'),
			tbl          text NOT NULL,
			op           text NOT NULL,
			recording_id text NOT NULL,
			old          jsonb,
			new          jsonb
		);
		CREATE FUNCTION onewriter_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO onewriter_audit (tbl, op, recording_id, old, new)
			VALUES (TG_TABLE_NAME, TG_OP, COALESCE(to_jsonb(NEW), to_jsonb(OLD)) ->> TG_ARGV[0],
				to_jsonb(OLD), to_jsonb(NEW));
			RETURN NULL;
		END $$;
		CREATE TRIGGER onewriter_audit AFTER INSERT OR UPDATE OR DELETE ON recordings
			FOR EACH ROW EXECUTE FUNCTION onewriter_audit('id');
		CREATE TRIGGER onewriter_audit AFTER INSERT OR UPDATE OR DELETE ON recording_parts
			FOR EACH ROW EXECUTE FUNCTION onewriter_audit('recording_id');`)
	if err != nil {
		t.Fatalf("install the audit trigger: %v", err)
	}
}

// auditRow is one logged write.
type auditRow struct {
	At                 time.Time
	App, Table, Op     string
	OldState, NewState string
	OldOwner, NewOwner string
	// Lease is the row's lease expiry after the write, OldLease before.
	Lease, OldLease *time.Time
}

// LeaseChanged reports whether the write set a new lease expiry.
func (a auditRow) LeaseChanged() bool {
	return a.Lease != nil && (a.OldLease == nil || !a.OldLease.Equal(*a.Lease))
}

func (a auditRow) String() string {
	lease := "-"
	if a.Lease != nil {
		lease = a.Lease.Format("15:04:05.000")
	}
	return fmt.Sprintf("%s %s %s %s state %s→%s owner %s→%s lease %s", a.At.Format("15:04:05.000"), a.App, a.Op, a.Table,
		a.OldState, a.NewState, a.OldOwner, a.NewOwner, lease)
}

// Audit returns the logged writes of recording id, oldest first.
func (c *owCluster) Audit(t *testing.T, id string) []auditRow {
	t.Helper()
	rows, err := c.DB.Query(context.Background(), `
		SELECT at, app, tbl, op, COALESCE(old ->> 'state', ''), COALESCE(new ->> 'state', ''),
			COALESCE(old ->> 'owner_node', ''), COALESCE(new ->> 'owner_node', ''),
			(new ->> 'lease_expires_at')::timestamptz, (old ->> 'lease_expires_at')::timestamptz
		FROM onewriter_audit WHERE recording_id = $1 ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var a auditRow
		if err := rows.Scan(&a.At, &a.App, &a.Table, &a.Op, &a.OldState, &a.NewState, &a.OldOwner, &a.NewOwner, &a.Lease, &a.OldLease); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// DBNow returns the database's clock.
func (c *owCluster) DBNow(t *testing.T) time.Time {
	t.Helper()
	var now time.Time
	if err := c.DB.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

// Owner returns the recording's owner node, its lease expiry and whether
// that lease is still valid on the database's clock.
func (c *owCluster) Owner(t *testing.T, id string) (node string, lease *time.Time, valid bool) {
	t.Helper()
	err := c.DB.QueryRow(context.Background(), `
		SELECT owner_node, lease_expires_at, COALESCE(lease_expires_at > clock_timestamp(), false)
		FROM recordings WHERE id = $1`, id).Scan(&node, &lease, &valid)
	if err != nil {
		t.Fatal(err)
	}
	return node, lease, valid
}

// waitOffset asks the durable offset through r's node until that node
// answers 200, within a deadline: the owner may be waking up.
func waitOffset(t *testing.T, r Started, within time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		req, _ := http.NewRequest("HEAD", r.IngestURL, nil)
		req.Header.Set("Authorization", "Bearer "+r.Token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
				if err != nil {
					t.Fatalf("HEAD ingest: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
				}
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("HEAD ingest of %s: no 200 within %s (last: %v %v)", r.ID, within, resp, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}

// recording returns GET /v1/recordings/{id} through c.
func recording(t *testing.T, c *Client, id string) map[string]any {
	t.Helper()
	return c.MustDo(t, 200, "GET", "/v1/recordings/"+id, nil)
}

// eventsFor returns the receiver's distinct accepted events of typ that
// match, and how many times each was accepted in all.
func (r *Receiver) eventsFor(typ string, match func(map[string]any) bool) (events []map[string]any, accepted int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev["type"] == typ && match(ev["data"].(map[string]any)) {
			events = append(events, ev)
			accepted += r.accepted[ev["id"].(string)]
		}
	}
	return events, accepted
}

// isWrite reports whether an S3 operation changes the bucket.
func isWrite(op string) bool {
	switch op {
	case "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload", "CopyObject", "PutObject", "CreateMultipartUpload":
		return true
	}
	return false
}
