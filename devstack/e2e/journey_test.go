package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	_ "github.com/glebarez/go-sqlite"  // the "sqlite" database/sql driver
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// The seed data the journey uses (devstack/confluencesim/seed.json).
const (
	samID     = "5b10ac8d82e05b22cc7d4ef5"                    // Sam Space-Admin: administers ENG and DOCS
	patID     = "712020:7a9d3c2b-1e4f-4a6b-8c5d-9e0f1a2b3c4d" // Pat Plain: reads, administers nothing
	appKey    = "space-sync-dev"
	spaceKey  = "ENG"
	spaceName = "Engineering"
	group     = "eng-team"
)

// The journey's inputs.
const (
	syncName        = "Engineering handbook"
	downloadMessage = "Hi DC team, here is the Engineering space. — Sam"
	recipient       = "dc-admin@example.org"
	mailSubject     = "Engineering handbook pairing"
	mailMessage     = "Please import this into Data Center."
	dcName          = "Engineering (from Cloud)"
)

// TestStack runs the seed journey (issue 7, steps 1–5) against the stack
// started as `make run` starts it, on the embedded SQLite default and on
// Postgres; then checks that no secret reached any log, that Ctrl-C stops
// everything cleanly, and that a second start keeps the data.
func TestStack(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	chromium(t)
	binaries(t)
	t.Run("sqlite", func(t *testing.T) {
		runJourney(t, newStackConfig(t), true)
	})
	t.Run("postgres", func(t *testing.T) {
		cfg := newStackConfig(t)
		cloudDB, dcDB := postgresDatabases(t)
		ks, err := token.GenerateKeySet("e2e1")
		if err != nil {
			t.Fatal(err)
		}
		// Off the embedded default the secrets are set explicitly, as in
		// production and in docker-compose.yml.
		cfg.env = map[string]string{
			"CLOUD_APP_DATABASE_URL": cloudDB,
			"DC_APP_DATABASE_URL":    dcDB,
			"CLOUD_APP_SECRET_KEY":   secret.NewKey().Encode(),
			"DC_APP_SECRET_KEY":      secret.NewKey().Encode(),
			"SPACESYNC_TOKEN_KEYS":   ks.Encode(),
		}
		runJourney(t, cfg, false)
	})
}

// postgresDatabases creates two empty databases (the services migrate them
// at start) on TEST_DATABASE_URL's server or a throwaway cluster.
func postgresDatabases(t *testing.T) (cloudURL, dcURL string) {
	t.Helper()
	admin := os.Getenv("TEST_DATABASE_URL")
	var c *dbtest.Cluster
	if admin == "" {
		var err error
		c, err = dbtest.StartCluster()
		if err != nil {
			t.Fatalf("start a throwaway Postgres: %v", err)
		}
		t.Cleanup(c.Remove)
		admin = c.URL("postgres")
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	suffix := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	var urls []string
	for _, name := range []string{"e2e_cloud_" + suffix, "e2e_dc_" + suffix} {
		if _, err := db.Exec(`CREATE DATABASE ` + name); err != nil {
			t.Fatalf("create database %s: %v", name, err)
		}
		t.Cleanup(func() {
			if _, err := db.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
				t.Errorf("drop %s: %v", name, err)
			}
		})
		urls = append(urls, withDatabase(t, admin, name))
	}
	return urls[0], urls[1]
}

func withDatabase(t *testing.T, admin, name string) string {
	t.Helper()
	i := strings.LastIndex(admin, "/")
	q := ""
	if j := strings.Index(admin, "?"); j > i {
		q = admin[j:]
	}
	if i < len("postgres://") {
		t.Fatalf("TEST_DATABASE_URL %q has no database path", admin)
	}
	return admin[:i+1] + name + q
}

// journey holds what the steps learn, for the later steps and the log scan.
type journey struct {
	t        *testing.T
	cfg      stackConfig
	embedded bool
	st       *stack
	shots    *shots
	sim      *tab // the Confluence simulator with the app's iframe
	dc       *tab // dc-app
	dl       string

	adminUser, adminPass string
	// banners are the banners of the first and the second start.
	banners             []string
	keys                *token.KeySet
	syncID              string
	downloadPath        string
	downloaded, emailed []byte
	downloadClaims      *token.Claims
	// secrets are every secret value seen, by what it is; none may appear
	// in any log.
	secrets map[string]string
	// logs is the output of every start of the stack.
	logs []string
}

func runJourney(t *testing.T, cfg stackConfig, docs bool) {
	start := time.Now()
	j := &journey{t: t, cfg: cfg, embedded: cfg.env["CLOUD_APP_DATABASE_URL"] == "", secrets: map[string]string{}}
	j.st = startStack(t, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- the stack's output ---\n%s", j.st.out.tail(80))
		}
	})
	t.Logf("stack up after %v", time.Since(start).Round(time.Millisecond))
	j.checkDatabases()
	j.readStackSecrets()

	ctx, dl := newBrowser(t)
	j.dl = dl
	j.shots = newShots(t, docs)
	j.sim = &tab{t: t, name: "confluence", page: ctx, shots: j.shots}
	dcCtx, cancel := chromedp.NewContext(ctx) // a second tab
	t.Cleanup(cancel)
	if err := chromedp.Do(dcCtx); err != nil {
		t.Fatal(err)
	}
	j.dc = &tab{t: t, name: "dc-app", page: dcCtx, shots: j.shots}

	j.step1CreateSync()
	j.step2DownloadAndSend()
	j.step3Import()
	j.step4Synced()
	j.step5Refusals()
	t.Logf("journey done after %v", time.Since(start).Round(time.Millisecond))

	j.st.interrupt()
	j.logs = append(j.logs, j.st.out.String())
	j.restart()
	j.st.interrupt()
	j.logs = append(j.logs, j.st.out.String())
	j.scanLogs()
	t.Logf("done after %v", time.Since(start).Round(time.Millisecond))
}
