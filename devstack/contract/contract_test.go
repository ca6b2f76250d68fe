// Package contract_test keeps the deployment files and the README honest
// against the contract (DESIGN section 11): docker-compose.yml cannot run
// here (no Docker engine), so it is parsed and checked instead.
package contract_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The configuration variables of DESIGN section 11, by service.
var contract = map[string][]string{
	"cloud-app": {
		"SPACESYNC_TOKEN_KEYS", "CLOUD_APP_SECRET_KEY", "CLOUD_APP_KEY", "CLOUD_APP_ADDR",
		"CLOUD_APP_BASE_URL", "CLOUD_APP_DATABASE_URL", "CLOUD_APP_DATA_DIR",
		"CLOUD_APP_TRUSTED_PROXIES", "CLOUD_APP_INSTALL_KEYS_URL", "CLOUD_APP_PRODUCT_HOSTS",
		"MAIL_MODE", "SENDGRID_API_KEY", "SENDGRID_API_URL", "MAIL_FROM",
	},
	"dc-app": {
		"DC_APP_SECRET_KEY", "DC_APP_ADDR", "DC_APP_BASE_URL", "DC_APP_DATABASE_URL",
		"DC_APP_DATA_DIR", "DC_APP_TRUSTED_PROXIES", "DC_APP_TRUSTED_CLOUD_URLS",
		"DC_APP_TRUSTED_SITES", "DC_APP_ADMIN_USERNAME", "DC_APP_ADMIN_PASSWORD",
	},
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       map[string]string `yaml:"build"`
		NetworkMode string            `yaml:"network_mode"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

func root(t *testing.T) string {
	t.Helper()
	return filepath.Join("..", "..")
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	return f
}

func TestCompose_ServicesMatchTheContract(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{"postgres", "simulators", "cloud-app", "dc-app"} {
		if _, ok := f.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	ports := map[string]string{"cloud-app": "127.0.0.1:8081", "dc-app": "127.0.0.1:8082"}
	for svc, vars := range contract {
		s, ok := f.Services[svc]
		if !ok {
			continue
		}
		for _, v := range vars {
			if _, ok := s.Environment[v]; !ok {
				t.Errorf("%s: contract variable %s is not set in docker-compose.yml", svc, v)
			}
		}
		known := map[string]bool{}
		for _, v := range vars {
			known[v] = true
		}
		for v := range s.Environment {
			if !known[v] {
				t.Errorf("%s: variable %s is not in the contract", svc, v)
			}
		}
		prefix := strings.ToUpper(strings.ReplaceAll(svc, "-", "_"))
		if got := s.Environment[prefix+"_ADDR"]; got != ports[svc] {
			t.Errorf("%s: %s_ADDR = %q, want %q", svc, prefix, got, ports[svc])
		}
		if !strings.HasPrefix(s.Environment[prefix+"_DATABASE_URL"], "postgres://") {
			t.Errorf("%s: runs on Postgres in compose, got %s_DATABASE_URL %q", svc, prefix, s.Environment[prefix+"_DATABASE_URL"])
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s: no health check", svc)
		}
		if dep, ok := s.DependsOn["postgres"]; !ok || dep.Condition != "service_healthy" {
			t.Errorf("%s: must wait for a healthy postgres", svc)
		}
		if s.Build["dockerfile"] != svc+"/Dockerfile" {
			t.Errorf("%s: builds from %q, want %s/Dockerfile", svc, s.Build["dockerfile"], svc)
		}
	}
	// Each app has its own database.
	cloudDB := f.Services["cloud-app"].Environment["CLOUD_APP_DATABASE_URL"]
	dcDB := f.Services["dc-app"].Environment["DC_APP_DATABASE_URL"]
	if dbName(cloudDB) == dbName(dcDB) {
		t.Errorf("cloud-app and dc-app share database %q", dbName(cloudDB))
	}
	// dc-app trusts exactly the cloud-app base URL its tokens name.
	if got, want := f.Services["dc-app"].Environment["DC_APP_TRUSTED_CLOUD_URLS"], f.Services["cloud-app"].Environment["CLOUD_APP_BASE_URL"]; got != want {
		t.Errorf("DC_APP_TRUSTED_CLOUD_URLS = %q, want cloud-app's base URL %q", got, want)
	}
	// No secret value is committed: secrets come from the environment.
	for _, v := range []string{"CLOUD_APP_SECRET_KEY", "SPACESYNC_TOKEN_KEYS"} {
		if s := f.Services["cloud-app"].Environment[v]; !strings.HasPrefix(s, "${") {
			t.Errorf("cloud-app %s must come from the environment, got a literal", v)
		}
	}
	for _, v := range []string{"DC_APP_SECRET_KEY", "DC_APP_ADMIN_PASSWORD"} {
		if s := f.Services["dc-app"].Environment[v]; !strings.HasPrefix(s, "${") {
			t.Errorf("dc-app %s must come from the environment, got a literal", v)
		}
	}
}

func dbName(u string) string {
	u, _, _ = strings.Cut(u, "?")
	return u[strings.LastIndex(u, "/")+1:]
}

func TestDockerfiles_MultiStageNonRoot(t *testing.T) {
	for _, svc := range []string{"cloud-app", "dc-app", "devstack"} {
		b, err := os.ReadFile(filepath.Join(root(t), svc, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Count(s, "\nFROM ") < 1 || strings.Count(s, "FROM ") < 2 {
			t.Errorf("%s/Dockerfile is not multi-stage", svc)
		}
		if !strings.Contains(s, "CGO_ENABLED=0") {
			t.Errorf("%s/Dockerfile does not build a static binary", svc)
		}
		if !regexp.MustCompile(`(?m)^USER nonroot`).MatchString(s) {
			t.Errorf("%s/Dockerfile does not run as a non-root user", svc)
		}
		if !strings.Contains(s, "golang:1.27.3") {
			t.Errorf("%s/Dockerfile does not build with Go 1.27.3", svc)
		}
	}
}

// TestREADME_DocumentsEveryVariable keeps the configuration table true.
func TestREADME_DocumentsEveryVariable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var all []string
	for _, vars := range contract {
		all = append(all, vars...)
	}
	sort.Strings(all)
	for _, v := range all {
		if !strings.Contains(readme, "`"+v+"`") {
			t.Errorf("README.md does not document %s", v)
		}
	}
	for _, cmd := range []string{"make run", "make test"} {
		if !strings.Contains(readme, cmd) {
			t.Errorf("README.md does not give %q", cmd)
		}
	}
}
