package config

import (
	"strings"
	"testing"

	"spacesync.io/shared/env"
)

func TestLoad_RefusesWithOneLineNamingTheVariable(t *testing.T) {
	for _, tc := range []struct {
		name, value, wantVar string
	}{
		{"CLOUD_APP_PRODUCT_HOSTS", "*", "CLOUD_APP_PRODUCT_HOSTS"},
		{"CLOUD_APP_PRODUCT_HOSTS", "*.com", "CLOUD_APP_PRODUCT_HOSTS"},
		{"CLOUD_APP_PRODUCT_HOSTS", "*.atlassian.net,*net", "CLOUD_APP_PRODUCT_HOSTS"},
		{"MAIL_FROM", "nobody", "MAIL_FROM"},
		{"CLOUD_APP_ADDR", "127.0.0.1:99999", "CLOUD_APP_ADDR"},
		{"CLOUD_APP_ADDR", "127.0.0.1:http", "CLOUD_APP_ADDR"},
	} {
		_, err := Load(env.FromMap(map[string]string{tc.name: tc.value}))
		if err == nil || !strings.Contains(err.Error(), tc.wantVar) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%q: %v; want one line naming %s", tc.name, tc.value, err, tc.wantVar)
		}
	}
	for _, ok := range []map[string]string{
		{},
		{"CLOUD_APP_PRODUCT_HOSTS": "*.atlassian.net,*.jira-dev.com,localhost"},
		{"MAIL_FROM": "Space Sync <no-reply@example.com>"},
		{"CLOUD_APP_ADDR": "127.0.0.1:0"},
	} {
		if _, err := Load(env.FromMap(ok)); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}
