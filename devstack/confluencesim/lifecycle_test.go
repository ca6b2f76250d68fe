package confluencesim_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"spacesync.io/devstack/confluencesim"
	"spacesync.io/shared/interop"
)

type ajwtOp struct {
	Op            string `json:"op"`
	Token         string `json:"token,omitempty"`
	Secret        string `json:"secret,omitempty"`
	PublicKeyPem  string `json:"publicKeyPem,omitempty"`
	PrivateKeyPem string `json:"privateKeyPem,omitempty"`
	Payload       any    `json:"payload,omitempty"`
	Method        string `json:"method,omitempty"`
	URL           string `json:"url,omitempty"`
	BaseURL       string `json:"baseUrl,omitempty"`
}

type ajwtResult struct {
	Payload   map[string]any `json:"payload"`
	Alg       string         `json:"alg"`
	Kid       string         `json:"kid"`
	Token     string         `json:"token"`
	QSH       string         `json:"qsh"`
	Canonical string         `json:"canonical"`
	Error     string         `json:"error"`
}

func oracle(t *testing.T, ops ...ajwtOp) []ajwtResult {
	t.Helper()
	var res []ajwtResult
	interop.Node(t, "ajwt_jwt.mjs", ops, &res)
	if len(res) != len(ops) {
		t.Fatalf("oracle answered %d results for %d ops", len(res), len(ops))
	}
	return res
}

// fetchInstallKey gets the PEM for kid from the simulator's install-keys
// endpoint, as the app's signed-install verifier does.
func fetchInstallKey(t *testing.T, h *harness, kid string) (int, string) {
	t.Helper()
	resp, err := h.srv.Client().Get(h.sim.InstallKeysURL() + "/" + kid)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// verifyRS256 checks an RS256 JWT with crypto/rsa directly (not with the
// simulator's connectjwt) and returns its header and claims.
func verifyRS256(t *testing.T, token, pemText string) (map[string]any, map[string]any) {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("install key is not a PEM PUBLIC KEY: %q", pemText)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(k.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("RS256 signature does not verify with the install key: %v", err)
	}
	var hdr, claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	mustJSON(t, hb, &hdr)
	mustJSON(t, cb, &claims)
	return hdr, claims
}

func jwtOf(t *testing.T, c lifecycleCall) string {
	t.Helper()
	tok, ok := strings.CutPrefix(c.Authorization, "JWT ")
	if !ok {
		t.Fatalf("%s: Authorization = %q, want JWT <token>", c.Path, c.Authorization)
	}
	return tok
}

func TestSim_Install_SignedInstall(t *testing.T) {
	for _, basePath := range []string{"", "/app"} {
		t.Run("base path "+basePath, func(t *testing.T) {
			h := newHarness(t, harnessOpts{basePath: basePath, noInstall: true})
			if err := h.sim.Install(context.Background()); err != nil {
				t.Fatalf("Install: %v", err)
			}
			calls := h.app.takeCalls()
			if len(calls) != 2 || calls[0].Path != basePath+"/lifecycle/installed" || calls[1].Path != basePath+"/lifecycle/enabled" {
				t.Fatalf("callbacks = %+v, want installed then enabled", calls)
			}
			appBase := h.app.srv.URL + basePath
			inst := calls[0]
			tok := jwtOf(t, inst)
			hdr, claims := verifyRS256(t, tok, mustInstallKey(t, h, tok))
			if hdr["alg"] != "RS256" || hdr["kid"] != h.sim.KeyID() {
				t.Errorf("header = %v", hdr)
			}
			body := inst.Body
			for k, want := range map[string]any{
				"key": "space-sync-test", "clientKey": h.sim.ClientKey(), "sharedSecret": h.sim.SharedSecret(),
				"baseUrl": h.sim.BaseURL(), "displayUrl": h.sim.BaseURL(), "productType": "confluence", "eventType": "installed",
			} {
				if body[k] != want {
					t.Errorf("body[%s] = %v, want %v", k, body[k], want)
				}
			}
			for _, k := range []string{"serverVersion", "pluginsVersion", "description"} {
				if s, _ := body[k].(string); s == "" {
					t.Errorf("body[%s] is empty", k)
				}
			}
			// Claims, with the qsh computed by atlassian-jwt.
			res := oracle(t,
				ajwtOp{Op: "qsh", Method: "POST", URL: appBase + "/lifecycle/installed", BaseURL: appBase},
				ajwtOp{Op: "decodeAsymmetric", Token: tok, PublicKeyPem: string(h.sim.PublicKeyPEM())},
				ajwtOp{Op: "qsh", Method: "POST", URL: appBase + "/lifecycle/enabled", BaseURL: appBase},
				ajwtOp{Op: "decodeSymmetric", Token: jwtOf(t, calls[1]), Secret: calls[1].Body["sharedSecret"].(string)},
				ajwtOp{Op: "decodeSymmetric", Token: jwtOf(t, calls[1]), Secret: "not-the-secret"},
			)
			if res[0].Canonical != "POST&/lifecycle/installed&" {
				t.Errorf("oracle canonical = %q", res[0].Canonical)
			}
			if claims["iss"] != body["clientKey"] || claims["aud"] != appBase || claims["qsh"] != res[0].QSH {
				t.Errorf("installed claims = %v; want iss %v, aud %s, qsh %s", claims, body["clientKey"], appBase, res[0].QSH)
			}
			exp, _ := claims["exp"].(float64)
			if time.Until(time.Unix(int64(exp), 0)) <= 0 {
				t.Errorf("installed exp %v is not in the future", exp)
			}
			if res[1].Error != "" || res[1].Kid != h.sim.KeyID() {
				t.Errorf("atlassian-jwt decodeAsymmetric: %s (kid %q)", res[1].Error, res[1].Kid)
			}
			if res[3].Error != "" {
				t.Fatalf("atlassian-jwt decodeSymmetric(enabled): %s", res[3].Error)
			}
			if p := res[3].Payload; p["iss"] != h.sim.ClientKey() || p["qsh"] != res[2].QSH || p["aud"] != nil {
				t.Errorf("enabled claims = %v, want iss clientKey, qsh %s, no aud", p, res[2].QSH)
			}
			if res[4].Error == "" {
				t.Error("enabled token verified with a wrong secret")
			}
			if inst, en := h.sim.Installed(); !inst || !en {
				t.Errorf("Installed() = %v, %v", inst, en)
			}
		})
	}
}

// mustInstallKey fetches the key named by the token's kid, checks a wrong
// kid is a 404 and returns the PEM.
func mustInstallKey(t *testing.T, h *harness, token string) string {
	t.Helper()
	hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var hdr struct{ Kid string }
	mustJSON(t, hb, &hdr)
	status, pemText := fetchInstallKey(t, h, hdr.Kid)
	if status != http.StatusOK {
		t.Fatalf("GET install key %s: %d", hdr.Kid, status)
	}
	if status, _ := fetchInstallKey(t, h, hdr.Kid+"0"); status != http.StatusNotFound {
		t.Errorf("GET install key for an unknown kid: %d, want 404", status)
	}
	return pemText
}

func TestSim_UninstallAndReinstall(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	secret1, clientKey := h.sim.SharedSecret(), h.sim.ClientKey()
	if err := h.sim.Uninstall(ctx); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	calls := h.app.takeCalls()
	if len(calls) != 2 || calls[0].Path != "/lifecycle/disabled" || calls[1].Path != "/lifecycle/uninstalled" {
		t.Fatalf("callbacks = %+v, want disabled then uninstalled", calls)
	}
	tok := jwtOf(t, calls[1])
	hdr, claims := verifyRS256(t, tok, string(h.sim.PublicKeyPEM()))
	if hdr["alg"] != "RS256" || claims["iss"] != clientKey || calls[1].Body["eventType"] != "uninstalled" {
		t.Errorf("uninstalled header %v claims %v body %v", hdr, claims, calls[1].Body)
	}
	if inst, _ := h.sim.Installed(); inst {
		t.Error("still installed after Uninstall")
	}
	if err := h.sim.Uninstall(ctx); !errors.Is(err, confluencesim.ErrNotInstalled) {
		t.Errorf("second Uninstall = %v, want ErrNotInstalled", err)
	}
	if err := h.sim.Install(ctx); err != nil {
		t.Fatalf("reinstall: %v", err)
	}
	if h.sim.ClientKey() != clientKey {
		t.Error("reinstall changed the clientKey")
	}
	if h.sim.SharedSecret() == secret1 {
		t.Error("reinstall after uninstall kept the old shared secret")
	}
	calls = h.app.takeCalls()
	if len(calls) != 2 || calls[0].Body["sharedSecret"] != h.sim.SharedSecret() {
		t.Errorf("reinstall callbacks = %+v", calls)
	}
}

func TestSim_EnableDisable(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	if err := h.sim.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, en := h.sim.Installed(); en {
		t.Error("enabled after Disable")
	}
	resp, _ := h.get(t, "/wiki/api/v2/spaces")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("REST call while disabled: %d, want 401", resp.StatusCode)
	}
	if _, err := h.sim.ContextToken("x"); !errors.Is(err, confluencesim.ErrNotEnabled) {
		t.Errorf("ContextToken while disabled = %v, want ErrNotEnabled", err)
	}
	if err := h.sim.Enable(ctx); err != nil {
		t.Fatal(err)
	}
	calls := h.app.takeCalls()
	if len(calls) != 2 || calls[0].Path != "/lifecycle/disabled" || calls[1].Path != "/lifecycle/enabled" {
		t.Fatalf("callbacks = %+v", calls)
	}
	for _, c := range calls {
		res := oracle(t, ajwtOp{Op: "decodeSymmetric", Token: jwtOf(t, c), Secret: h.sim.SharedSecret()})
		if res[0].Error != "" || res[0].Alg != "HS256" {
			t.Errorf("%s: %s (alg %s)", c.Path, res[0].Error, res[0].Alg)
		}
	}
	resp, _ = h.get(t, "/wiki/api/v2/spaces")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("REST call after Enable: %d, want 200", resp.StatusCode)
	}
}

func TestSim_RotateSecret(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	old := h.sim.SharedSecret()

	t.Run("ErrRefused", func(t *testing.T) {
		h.app.setStatus(http.StatusInternalServerError)
		defer h.app.setStatus(http.StatusOK)
		err := h.sim.RotateSecret(ctx)
		var le *confluencesim.LifecycleError
		if !errors.As(err, &le) || le.Status != 500 || le.Event != "installed" {
			t.Fatalf("RotateSecret with a failing app = %v, want a LifecycleError 500", err)
		}
		if h.sim.SharedSecret() != old {
			t.Error("a refused rotation changed the secret")
		}
		h.app.takeCalls()
	})
	t.Run("OK", func(t *testing.T) {
		if err := h.sim.RotateSecret(ctx); err != nil {
			t.Fatal(err)
		}
		calls := h.app.takeCalls()
		if len(calls) != 1 || calls[0].Path != "/lifecycle/installed" || calls[0].Body["sharedSecret"] != h.sim.SharedSecret() {
			t.Fatalf("callbacks = %+v", calls)
		}
		if h.sim.SharedSecret() == old {
			t.Error("secret unchanged")
		}
		// A token signed with the old secret is refused now; the new one works.
		req := "/wiki/api/v2/spaces?limit=1"
		if resp, _ := h.do(t, "GET", req, "JWT "+signAs(t, "space-sync-test", old, "GET", req)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("call with the old secret: %d, want 401", resp.StatusCode)
		}
		if resp, _ := h.get(t, req); resp.StatusCode != http.StatusOK {
			t.Errorf("call with the new secret: %d, want 200", resp.StatusCode)
		}
	})
}

func TestSim_Install_ErrAppRefuses(t *testing.T) {
	h := newHarness(t, harnessOpts{noInstall: true})
	h.app.setStatus(http.StatusUnauthorized)
	err := h.sim.Install(context.Background())
	var le *confluencesim.LifecycleError
	if !errors.As(err, &le) || le.Status != http.StatusUnauthorized {
		t.Fatalf("Install = %v, want LifecycleError 401", err)
	}
	if inst, _ := h.sim.Installed(); inst {
		t.Error("installed although the app refused")
	}
	h.app.setStatus(http.StatusNoContent)
	if err := h.sim.Install(context.Background()); err != nil {
		t.Fatalf("Install with a 204 answer: %v", err)
	}
}

func TestSim_Install_ErrBadDescriptor(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value any
	}{
		{"no key", "key", ""},
		{"bad baseUrl", "baseUrl", "ftp://x"},
		{"no auth", "authentication", map[string]any{"type": "none"}},
		{"no installed", "lifecycle", map[string]any{"enabled": "/e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{noInstall: true})
			h.app.setDescriptor(tt.key, tt.value)
			if err := h.sim.Install(context.Background()); err == nil {
				t.Fatal("Install accepted a bad descriptor")
			}
			if calls := h.app.takeCalls(); len(calls) != 0 {
				t.Errorf("callbacks sent for a bad descriptor: %v", calls)
			}
		})
	}
}

// TestSim_Install_Legacy covers apps without signed-install: the first
// install is unsigned, later ones are HS256 with the previous secret.
func TestSim_Install_Legacy(t *testing.T) {
	h := newHarness(t, harnessOpts{noInstall: true})
	h.app.setDescriptor("apiMigrations", map[string]any{"context-qsh": true})
	ctx := context.Background()
	if err := h.sim.Install(ctx); err != nil {
		t.Fatal(err)
	}
	calls := h.app.takeCalls()
	if calls[0].Authorization != "" {
		t.Errorf("first legacy install carries %q, want no JWT", calls[0].Authorization)
	}
	old := h.sim.SharedSecret()
	if err := h.sim.RotateSecret(ctx); err != nil {
		t.Fatal(err)
	}
	calls = h.app.takeCalls()
	res := oracle(t,
		ajwtOp{Op: "decodeSymmetric", Token: jwtOf(t, calls[0]), Secret: old},
		ajwtOp{Op: "decodeSymmetric", Token: jwtOf(t, calls[0]), Secret: h.sim.SharedSecret()},
	)
	if res[0].Error != "" || res[1].Error == "" {
		t.Errorf("legacy reinstall: old secret %q, new secret %q; want signed with the old secret only", res[0].Error, res[1].Error)
	}
}

func TestSim_StateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim-state.json")
	h := newHarness(t, harnessOpts{stateFile: path})
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", info.Mode().Perm())
	}
	again, err := confluencesim.New(confluencesim.Config{PublicURL: h.srv.URL, AppDescriptorURL: h.app.descriptorURL(), StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if again.ClientKey() != h.sim.ClientKey() || again.SharedSecret() != h.sim.SharedSecret() || again.KeyID() != h.sim.KeyID() {
		t.Error("a restarted simulator lost its clientKey, secret or key")
	}
	if inst, en := again.Installed(); !inst || !en {
		t.Errorf("restarted Installed() = %v, %v", inst, en)
	}
	if _, err := again.PageURL("", "someone"); err != nil {
		t.Errorf("restarted PageURL: %v", err)
	}
	if _, err := confluencesim.New(confluencesim.Config{PublicURL: h.srv.URL, AppDescriptorURL: h.app.descriptorURL(), StateFile: path, ClientKey: "other"}); err == nil {
		t.Error("New accepted a ClientKey that contradicts the state file")
	}
	var st map[string]any
	b, _ := os.ReadFile(path)
	mustJSON(t, b, &st)
	if st["installed"] != true || st["privateKeyPem"] == "" {
		t.Errorf("state file = %v", st)
	}
}

func TestNew_ErrConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  confluencesim.Config
		ok   bool
	}{
		{"ok", confluencesim.Config{PublicURL: "http://localhost:8080", AppDescriptorURL: "http://127.0.0.1:8081/atlassian-connect.json"}, true},
		{"path in PublicURL", confluencesim.Config{PublicURL: "http://localhost:8080/wiki", AppDescriptorURL: "http://127.0.0.1:8081/d"}, false},
		{"no scheme", confluencesim.Config{PublicURL: "localhost:8080", AppDescriptorURL: "http://127.0.0.1:8081/d"}, false},
		{"no descriptor", confluencesim.Config{PublicURL: "http://localhost:8080"}, false},
		{"bad seed", confluencesim.Config{PublicURL: "http://localhost:8080", AppDescriptorURL: "http://127.0.0.1:8081/d",
			Seed: &confluencesim.Seed{Spaces: []confluencesim.Space{{ID: "x", Key: "A", Name: "A", Type: "global", Status: "current"}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.RSAKey = testKey()
			_, err := confluencesim.New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("New error = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
