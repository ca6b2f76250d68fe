package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/shared/env"
)

// lockedBuffer is a goroutine-safe writer for the service's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDCApp runs dc-app through run, as main does, configured only by
// the contract's variables, and returns its base URL.
func startDCApp(t *testing.T, vars map[string]string) (string, *lockedBuffer) {
	t.Helper()
	addr := freeAddr(t)
	base := "http://" + addr
	all := map[string]string{
		"DC_APP_ADDR":     addr,
		"DC_APP_BASE_URL": base,
		"DC_APP_DATA_DIR": t.TempDir(),
	}
	for k, v := range vars {
		all[k] = v
	}
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- run(ctx, env.FromMap(all), logs, logs, func(net.Addr) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("dc-app did not start: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("dc-app did not start in time")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dc-app stopped with %v", err)
		}
	})
	return base, logs
}

func artifactsDir(t *testing.T) string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		dir := filepath.Join(d, "dc-app-browser")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

func browser(t *testing.T) context.Context {
	t.Helper()
	exe := "/usr/bin/chromium"
	if _, err := os.Stat(exe); err != nil {
		t.Fatal("Chromium is not installed at /usr/bin/chromium: apt-get install chromium (.ci/run does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelC)
	ctx, cancelT := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(cancelT)
	return ctx
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// dropFile dispatches a real drag-and-drop sequence on the drop zone with
// a DataTransfer holding a File built in the page, as the browser does
// when a file is dragged in from the desktop.
func dropFile(name, content, mime string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => {
		const zone = document.querySelector('#dropzone');
		const dt = new DataTransfer();
		dt.items.add(new File([` + jsString(content) + `], ` + jsString(name) + `, {type: ` + jsString(mime) + `}));
		for (const type of ['dragenter', 'dragover', 'drop']) {
			zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
		}
	})()`)
}

// dropBytes drops a file with exactly these bytes (sent base64-encoded
// and rebuilt in the page); a large run of one byte is built in the page.
func dropBytes(name string, body []byte) chromedp.Action[chromedp.Void] {
	build := `Uint8Array.from(atob(` + jsString(base64.StdEncoding.EncodeToString(body)) + `), c => c.charCodeAt(0))`
	if len(body) > 1<<20 && bytes.Count(body, body[:1]) == len(body) {
		build = `new TextEncoder().encode(` + jsString(string(body[:1])) + `.repeat(` + strconv.Itoa(len(body)) + `))`
	}
	return chromedp.Evaluate[chromedp.Void](`(() => {
		const zone = document.querySelector('#dropzone');
		const dt = new DataTransfer();
		dt.items.add(new File([` + build + `], ` + jsString(name) + `));
		for (const type of ['dragenter', 'dragover', 'drop']) {
			zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
		}
	})()`)
}

// pasteText dispatches a paste event carrying text on the token field.
func pasteText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => {
		const field = document.querySelector('#token-text');
		field.focus();
		const dt = new DataTransfer();
		dt.setData('text/plain', ` + jsString(text) + `);
		field.dispatchEvent(new ClipboardEvent('paste', {bubbles: true, cancelable: true, clipboardData: dt}));
	})()`)
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor waits until the JavaScript expression is true, across
// navigations (an evaluation during one fails and is tried again).
func waitFor(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tg)
			if err == nil && ok {
				return chromedp.Void{}, nil
			}
			if time.Now().After(deadline) {
				return chromedp.Void{}, fmt.Errorf("timed out waiting for %s (last error: %v)", expr, err)
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// waitForRow waits for the page shown after an import, with the row of
// that name highlighted.
func waitForRow(name string) chromedp.Action[chromedp.Void] {
	return waitFor(`(() => { const r = document.querySelector('tr.is-highlighted .space-name'); return !!r && r.textContent === ` + jsString(name) + `; })()`)
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	do(t, ctx, chromedp.Sleep(350*time.Millisecond)) // let dialogs and flags finish animating
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// TestBrowser_ImportByDropAndPaste signs in with a real Chromium, imports
// one token by dropping its file on the drop zone and another by pasting
// its text, and checks the preview, the new rows and the refusal of a
// second import of the same file.
func TestBrowser_ImportByDropAndPaste(t *testing.T) {
	ctx := browser(t)
	fake := cloudtest.New(t)
	base, logs := startDCApp(t, map[string]string{
		"DC_APP_TRUSTED_CLOUD_URLS": fake.URL,
		"DC_APP_ADMIN_USERNAME":     "dcadmin",
		"DC_APP_ADMIN_PASSWORD":     "browser test password",
	})
	dir := artifactsDir(t)
	message := "Hi DC team,\nthis is the <b>handbook</b> space — import it as \"Handbook\".\n— Ana"
	first := fake.Mint(t, cloudtest.MintOptions{Message: message, Comments: true, Labels: true})
	second := fake.Mint(t, cloudtest.MintOptions{SpaceKey: "TEAM", Space: "Team Docs"})

	// Sign in.
	do(t, ctx,
		chromedp.Navigate(base+"/space-sync"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "dcadmin"),
		chromedp.SendKeys(chromedp.ID("password"), "browser test password"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("import-open")),
		chromedp.WaitEnabled(chromedp.ID("import-open")),
	)
	screenshot(t, ctx, dir, "01-empty.png")

	// Import by drag and drop.
	do(t, ctx,
		chromedp.Click(chromedp.ID("import-open")),
		chromedp.WaitVisible(chromedp.ID("dropzone")),
	)
	if got := eval[string](t, ctx, `document.activeElement.id`); got != "dropzone" {
		t.Errorf("focus on opening the dialog: %q, want the drop zone", got)
	}
	do(t, ctx, dropFile("ACME-space-sync.token", first+"\r\n", ""), chromedp.WaitVisible(chromedp.ID("import-preview")))
	if got := text(t, ctx, "#pv-site"); got != cloudtest.DefaultSite.DisplayURL {
		t.Errorf("verified site = %q", got)
	}
	if got := text(t, ctx, "#pv-site-base"); !strings.Contains(got, cloudtest.DefaultSite.BaseURL) {
		t.Errorf("site base = %q", got)
	}
	if got := text(t, ctx, "#pv-space"); got != "Acme Handbook (ACME)" {
		t.Errorf("space = %q", got)
	}
	if got := text(t, ctx, "#pv-perms"); !strings.Contains(got, "Ana Admin") || !strings.Contains(got, "docs-team") {
		t.Errorf("permissions = %q", got)
	}
	if got := text(t, ctx, "#pv-comments") + "/" + text(t, ctx, "#pv-labels"); got != "Synced/Synced" {
		t.Errorf("comments/labels = %q", got)
	}
	if got := text(t, ctx, "#pv-expires"); !strings.Contains(got, "in 7 days") {
		t.Errorf("expiry = %q", got)
	}
	// The sender's message is quoted as text: its markup stays text.
	if got := eval[string](t, ctx, `document.querySelector('#pv-message').textContent`); got != message {
		t.Errorf("message = %q", got)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#pv-message *').length`); n != 0 {
		t.Errorf("the message created %d elements", n)
	}
	if got := eval[string](t, ctx, `document.querySelector('#sync-name').value`); got != "Acme Handbook" {
		t.Errorf("name prefilled with %q", got)
	}
	screenshot(t, ctx, dir, "02-preview.png")
	do(t, ctx,
		chromedp.Click(chromedp.ID("import-submit")),
		waitForRow("Acme Handbook"),
	)
	if got := text(t, ctx, "tr.is-highlighted .space-name"); got != "Acme Handbook" {
		t.Errorf("new row = %q", got)
	}
	if got := text(t, ctx, "tr.is-highlighted .status-lozenge"); got != "Linked" {
		t.Errorf("new row status = %q", got)
	}
	if got := text(t, ctx, ".flag--success .flag__title"); got != "“Acme Handbook” is synced" {
		t.Errorf("flag = %q", got)
	}
	if got := eval[string](t, ctx, `location.search`); got != "" {
		t.Errorf("the import's query stayed in the address bar: %q", got)
	}
	screenshot(t, ctx, dir, "03-imported.png")

	// Import by paste, with a name of our own and local permissions.
	do(t, ctx,
		chromedp.WaitEnabled(chromedp.ID("import-open")),
		chromedp.Click(chromedp.ID("import-open")),
		chromedp.WaitVisible(chromedp.ID("token-text")),
		pasteText(second),
		chromedp.WaitVisible(chromedp.ID("import-preview")),
	)
	if got := text(t, ctx, "#pv-space"); got != "Team Docs (TEAM)" {
		t.Errorf("pasted preview space = %q", got)
	}
	if got := text(t, ctx, "#pv-no-message"); got != "The sender left no message." {
		t.Errorf("no-message text = %q", got)
	}
	do(t, ctx,
		chromedp.SetValue(chromedp.ID("sync-name"), "Team Docs on DC"),
		chromedp.SendKeys(chromedp.ID("local-perms"), "group:confluence-administrators"),
		chromedp.Click(chromedp.ID("import-submit")),
		waitForRow("Team Docs on DC"),
	)
	if got := text(t, ctx, "tr.is-highlighted .space-name"); got != "Team Docs on DC" {
		t.Errorf("pasted row = %q", got)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#spaces-table tbody tr').length`); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
	if got := text(t, ctx, "tr.is-highlighted td:nth-child(3)"); !strings.Contains(got, "confluence-administrators") {
		t.Errorf("local permissions not shown: %q", got)
	}

	// The same file again: refused with a clear reason, nothing imported.
	do(t, ctx,
		chromedp.WaitEnabled(chromedp.ID("import-open")),
		chromedp.Click(chromedp.ID("import-open")),
		chromedp.WaitVisible(chromedp.ID("dropzone")),
		dropFile("ACME-space-sync.token", first, "application/octet-stream"),
		chromedp.WaitVisible(chromedp.ID("import-error")),
	)
	if got := text(t, ctx, "#import-error-title"); got != "This token has already been imported" {
		t.Errorf("second import error = %q", got)
	}
	if got := text(t, ctx, "#import-error-text"); !strings.Contains(got, "already been imported here") {
		t.Errorf("second import message = %q", got)
	}
	if eval[bool](t, ctx, `!document.querySelector('#import-preview').hidden`) {
		t.Error("a preview is shown for a refused token")
	}
	screenshot(t, ctx, dir, "04-already-imported.png")

	// A file that is not a token at all.
	do(t, ctx, dropFile("photo.png", "\x89PNG not a token", "image/png"), chromedp.WaitVisible(chromedp.ID("import-error")))
	if got := text(t, ctx, "#import-error-title"); got != "This is not a valid space token" {
		t.Errorf("non-token error = %q", got)
	}

	// Keyboard: Tab stays inside the dialog, Escape closes it and focus
	// returns to Import Token.
	for range 12 {
		do(t, ctx, chromedp.KeyEvent(kb.Tab))
		if !eval[bool](t, ctx, `document.querySelector('#import-dialog').contains(document.activeElement)`) {
			t.Fatal("Tab left the open dialog")
		}
	}
	do(t, ctx, chromedp.KeyEvent(kb.Escape))
	if eval[bool](t, ctx, `document.querySelector('#import-dialog').open`) {
		t.Error("Escape did not close the dialog")
	}
	if got := eval[string](t, ctx, `document.activeElement.id`); got != "import-open" {
		t.Errorf("focus after closing = %q", got)
	}

	// Every file of the bad-input corpus dropped on the drop zone: each
	// gets the heading of its code and the server's explanation, and no
	// preview.
	do(t, ctx, chromedp.Click(chromedp.ID("import-open")), chromedp.WaitVisible(chromedp.ID("dropzone")))
	for _, b := range cloudtest.BadTokens(t, fake) {
		do(t, ctx,
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#import-error').hidden = true`),
			dropBytes(b.Name+".token", b.Body),
			waitFor(`!document.querySelector('#import-error').hidden`),
		)
		want := eval[string](t, ctx, `JSON.parse(document.querySelector('#error-titles').textContent)[`+jsString(string(b.Code))+`]`)
		if got := text(t, ctx, "#import-error-title"); got != want || want == "" {
			t.Errorf("%s: heading %q, want %q (%s)", b.Name, got, want, b.Code)
		}
		if got := text(t, ctx, "#import-error-text"); len(got) < 20 {
			t.Errorf("%s: message %q", b.Name, got)
		}
		if eval[bool](t, ctx, `!document.querySelector('#import-preview').hidden`) {
			t.Errorf("%s: a preview is shown", b.Name)
		}
	}
	screenshot(t, ctx, dir, "05-corpus-error.png")
	do(t, ctx, chromedp.KeyEvent(kb.Escape))

	// Remove one synced space: unlinked on Cloud too.
	do(t, ctx,
		chromedp.Click(chromedp.CSS(`tr:nth-child(1) button[data-remove]`)),
		chromedp.WaitVisible(chromedp.ID("remove-confirm")),
	)
	screenshot(t, ctx, dir, "06-remove-confirm.png")
	do(t, ctx,
		chromedp.Click(chromedp.ID("remove-confirm")),
		chromedp.WaitVisible(chromedp.CSS(".flag--success")),
		chromedp.WaitNotVisible(chromedp.ID("remove-dialog")),
	)
	if n := eval[int](t, ctx, `document.querySelectorAll('#spaces-table tbody tr').length`); n != 1 {
		t.Errorf("%d rows after removal, want 1", n)
	}
	if n := len(fake.ActiveLinks()); n != 1 {
		t.Errorf("Cloud has %d active links after removing one of two", n)
	}
	screenshot(t, ctx, dir, "07-removed.png")

	if strings.Contains(logs.String(), first[:40]) || strings.Contains(logs.String(), "browser test password") {
		t.Error("a token or the admin password reached the log")
	}
}

// TestRun_GeneratedPassword: with no DC_APP_ADMIN_PASSWORD, run prints a
// generated password once, outside the structured log records, and it
// signs in.
func TestRun_GeneratedPassword(t *testing.T) {
	base, logs := startDCApp(t, map[string]string{"DC_APP_ADMIN_USERNAME": "root-admin"})
	out := logs.String()
	i := strings.Index(out, "generated password (shown only this once):\n\n    ")
	if i < 0 {
		t.Fatalf("no generated password printed:\n%s", out)
	}
	pw := strings.Fields(out[i+len("generated password (shown only this once):"):])[0]
	if strings.Count(out, pw) != 1 {
		t.Errorf("the password appears %d times", strings.Count(out, pw))
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/synced-spaces", nil)
	req.SetBasicAuth("root-admin", pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("Basic with the generated password = %d", resp.StatusCode)
	}
	req.SetBasicAuth("root-admin", pw+"x")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("Basic with a wrong password = %d", resp.StatusCode)
	}
}
