package mail

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/config"
	"spacesync.io/shared/env"
)

func TestFromConfig(t *testing.T) {
	dir := t.TempDir()
	load := func(vars map[string]string) *config.Config {
		t.Helper()
		vars["CLOUD_APP_DATA_DIR"] = dir
		cfg, err := config.Load(env.FromMap(vars))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	m, err := FromConfig(load(map[string]string{}), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := m.(*Outbox); !ok || o.Dir() != filepath.Join(dir, "outbox") {
		t.Errorf("no SendGrid key: %T %+v, want the outbox in the data directory", m, m)
	}

	m, err = FromConfig(load(map[string]string{
		"SENDGRID_API_KEY": "SG.key", "SENDGRID_API_URL": "http://127.0.0.1:8083", "MAIL_FROM": "Space Sync <no-reply@spacesync.example>",
	}), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if sg, ok := m.(*SendGrid); !ok || sg.host != "http://127.0.0.1:8083" || sg.timeout != DefaultSendTimeout {
		t.Errorf("with a SendGrid key: %T, want SendGrid at the configured URL", m)
	}

	// MAIL_MODE=outbox wins over a key; a bad MAIL_FROM fails at start.
	m, err = FromConfig(load(map[string]string{"SENDGRID_API_KEY": "SG.key", "MAIL_MODE": "outbox"}), time.Now)
	if _, ok := m.(*Outbox); err != nil || !ok {
		t.Errorf("MAIL_MODE=outbox: %T, %v", m, err)
	}
	// The configuration refuses it before any mailer is made, naming it.
	if _, err := config.Load(env.FromMap(map[string]string{"CLOUD_APP_DATA_DIR": dir, "MAIL_FROM": "not an address"})); err == nil || !strings.Contains(err.Error(), "MAIL_FROM") {
		t.Errorf("a MAIL_FROM that is not an address: %v", err)
	}
}
