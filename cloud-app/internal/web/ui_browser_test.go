package web

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/devstack/confluencesim"
	"spacesync.io/devstack/sendgridsim"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/token"
)

// uiChromium returns the browser to drive, or "" when there is none.
func uiChromium() string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/lib/chromium/chromium"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return ""
}

// uiArtifacts is where screenshots go: $ARTIFACTS_DIR when set, else a
// temporary directory of the test.
func uiArtifacts(t *testing.T) string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// uiBrowser is a headless Chromium showing the simulator's host page, with
// the app's cross-site iframe attached as its own target.
type uiBrowser struct {
	t     *testing.T
	page  context.Context // the simulator's top-level page
	frame context.Context // the app's iframe (127.0.0.1, another site)
	shots string
	n     int
}

// do runs steps in the app's iframe.
func (b *uiBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.frame, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the app's iframe.
func uiEval[T any](b *uiBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.frame, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression in the app's iframe is truthy.
func (b *uiBrowser) waitJS(what, expr string, timeout time.Duration) {
	b.t.Helper()
	// Timeouts are hang guards, not speed checks: the given one is what a
	// quiet machine needs; `make test` runs several packages at once on two
	// cores, so allow four times as much.
	timeout *= 4
	ctx, cancel := context.WithTimeout(b.frame, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// shot saves a screenshot of the whole host page (iframe included).
func (b *uiBrowser) shot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.page, 10*time.Second)
	defer cancel()
	time.Sleep(300 * time.Millisecond) // let dialogs and flags finish animating
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	b.n++
	path := filepath.Join(b.shots, strings.ReplaceAll(b.t.Name(), "/", "_")+"-"+itoa(b.n)+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// TestSpaceSyncPage_Browser drives the page in headless Chromium inside the
// Confluence simulator's host page, with the app on 127.0.0.1 (cross-site)
// and third-party cookies blocked: create a sync, download its token, send
// it, and follow the email to sent.
func TestSpaceSyncPage_Browser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	exe := uiChromium()
	if exe == "" {
		t.Fatal("Chromium is not installed: apt-get install chromium (.ci/run does)")
	}
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{})
	site := e.sites[0]
	ada := site.user(t, uiAda)
	downloads := t.TempDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		// Block third-party cookies, as browsers now do.
		chromedp.Flag("test-third-party-cookie-phaseout", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelCtx)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads, EventsEnabled: new(true),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetCookieControls, network.SetCookieControlsParams{EnableThirdPartyCookieRestriction: true}); err != nil {
		t.Fatal(err)
	}
	ck := confluencesim.UserCookie(ada)
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
		Name: ck.Name, Value: ck.Value, URL: site.URL + "/", HTTPOnly: new(true), SameSite: network.CookieSameSiteLax,
	}); err != nil {
		t.Fatal(err)
	}
	hostPage := site.URL + "/wiki/plugins/servlet/ac/" + e.app.deps.Config.AppKey + "/space-sync"
	if err := chromedp.Do(ctx, chromedp.Navigate(hostPage)); err != nil {
		t.Fatalf("open %s: %v", hostPage, err)
	}
	b := &uiBrowser{t: t, page: ctx, frame: uiAttachFrame(t, ctx, e.appURL+"/pages/space-sync"), shots: uiArtifacts(t)}

	// The space list, from the iframe API with context tokens.
	b.waitJS("the space list", `document.querySelectorAll('#spaces-body tr').length === 9`, 15*time.Second)
	b.shot("spaces")
	if uiEval[string](b, `document.cookie`) != "" {
		t.Errorf("the app's frame has cookies")
	}

	// Search, then open Engineering.
	// Click first: key events reach a cross-site frame only once it has
	// focus, which a busy machine may not have given it yet.
	b.do("search", chromedp.Click(chromedp.CSS("#space-query")), chromedp.SendKeys(chromedp.CSS("#space-query"), "engin"))
	b.waitJS("the typed query", `document.getElementById('space-query').value === 'engin'`, 5*time.Second)
	b.waitJS("the search result", `document.querySelectorAll('#spaces-body tr').length === 1 && document.querySelector('#spaces-body').textContent.includes('Engineering')`, 10*time.Second)
	b.do("open ENG", chromedp.Click(chromedp.CSS(`button[aria-label="Edit sync settings of Engineering"]`)))
	b.waitJS("the ENG view", `!document.getElementById('create-sync').hidden && !document.getElementById('syncs-empty').hidden`, 10*time.Second)

	// Create New Sync: the name is the space's, the permissions start with
	// the space's admins; add Pat with the picker (keyboard only).
	b.do("open Create", chromedp.Click(chromedp.ID("create-sync")))
	b.waitJS("the create dialog", `document.getElementById('dlg-create').open && document.querySelectorAll('#create-perms-chosen li').length === 2`, 10*time.Second)
	if got := uiEval[string](b, `document.getElementById('create-name').value`); got != "Engineering" {
		t.Errorf("the name is prefilled with %q", got)
	}
	if got := uiEval[string](b, `document.getElementById('create-perms-chosen').textContent`); !strings.Contains(got, "confluence-admins") || !strings.Contains(got, uiSam) {
		t.Errorf("default permissions: %q", got)
	}
	b.do("search Pat", chromedp.SendKeys(chromedp.ID("create-perms-input"), "pat"))
	b.waitJS("Pat in the picker", `!document.getElementById('create-perms-list').hidden && document.getElementById('create-perms-list').textContent.includes('Pat Plain')`, 10*time.Second)
	b.shot("create-dialog")
	b.do("choose Pat", chromedp.KeyEvent(kb.Enter))
	b.waitJS("Pat chosen", `document.querySelectorAll('#create-perms-chosen li').length === 3`, 5*time.Second)
	b.do("labels off", chromedp.Click(chromedp.ID("create-labels")))
	b.do("create", chromedp.Click(chromedp.ID("create-submit")))
	b.waitJS("the new row", `!document.getElementById('dlg-create').open && document.querySelectorAll('#syncs-body tr').length === 1`, 10*time.Second)
	if got := uiEval[string](b, `document.querySelector('#syncs-body tr .lozenge').textContent`); got != "Not sync yet" {
		t.Errorf("the new row's lozenge says %q", got)
	}
	syncID := uiEval[string](b, `document.querySelector('#syncs-body tr').dataset.syncId`)
	b.shot("sync-created")

	// The actions menu works from the keyboard: ArrowDown opens it on its
	// first item, Escape closes it and gives the focus back.
	b.do("focus actions", chromedp.Focus(chromedp.CSS(".ss-actions")))
	b.do("open menu", chromedp.KeyEvent(kb.ArrowDown))
	b.waitJS("the menu", `!document.getElementById('actions-menu').hidden && document.activeElement.textContent === 'Send Token'`, 5*time.Second)
	b.do("close menu", chromedp.KeyEvent(kb.Escape))
	b.waitJS("the menu closed", `document.getElementById('actions-menu').hidden && document.activeElement.classList.contains('ss-actions')`, 5*time.Second)

	// Download Token: fetched with the context token, saved from a Blob.
	openAction := func(label string) {
		b.t.Helper()
		b.do("open menu", chromedp.Click(chromedp.CSS(".ss-actions")))
		b.waitJS("the menu", `!document.getElementById('actions-menu').hidden`, 5*time.Second)
		idx := uiEval[int](b, `[...document.querySelectorAll('#actions-menu [role=menuitem]')].findIndex(b => b.textContent === `+jsString(label)+`)`)
		if idx < 0 {
			t.Fatalf("no %s in the menu", label)
		}
		b.do(label, chromedp.Click(chromedp.CSS(`#actions-menu li:nth-child(`+itoa(idx+1)+`) [role=menuitem]`)))
	}
	openAction("Download Token")
	b.waitJS("the download dialog", `document.getElementById('dlg-download').open`, 5*time.Second)
	b.do("message", chromedp.SendKeys(chromedp.ID("download-message"), "Hello from Cloud"))
	b.do("download", chromedp.Click(chromedp.ID("download-submit")))
	b.waitJS("the download result", `!document.getElementById('download-result').hidden`, 10*time.Second)
	b.shot("downloaded")
	file := filepath.Join(downloads, "ENG-space-sync.token")
	downloaded := uiWaitFile(t, file)
	opener := &token.Opener{Keys: e.keys, Issuer: e.appURL}
	dc, err := opener.Open(downloaded)
	if err != nil {
		t.Fatalf("open the downloaded file: %v", err)
	}
	if dc.Sync.ID != syncID || dc.Message != "Hello from Cloud" || dc.Space.Key != "ENG" || len(dc.Sync.Permissions) != 3 || dc.Sync.Labels || !dc.Sync.Comments {
		t.Fatalf("downloaded token: %+v", dc)
	}
	b.do("close download", chromedp.Click(chromedp.ID("download-cancel")))

	// Send Token: 202, then the page follows the email to sent.
	openAction("Send Token")
	b.waitJS("the send dialog", `document.getElementById('dlg-send').open && document.getElementById('send-subject').value === 'Space Sync token for the space Engineering'`, 5*time.Second)
	b.do("to", chromedp.SendKeys(chromedp.ID("send-to"), "dc-admin@example.org"))
	b.do("message", chromedp.SendKeys(chromedp.ID("send-message"), "Please import this."))
	b.do("send", chromedp.Click(chromedp.ID("send-submit")))
	b.waitJS("sent", `document.getElementById('send-progress').textContent.includes('sent to dc-admin@example.org') && document.getElementById('send-progress').textContent.includes('Spam or Junk')`, 20*time.Second)
	b.shot("sent")

	mctx, mcancel := context.WithTimeout(context.Background(), 10*time.Second)
	msg, err := e.sg.WaitForMessage(mctx, func(m sendgridsim.Message) bool { return len(m.To) == 1 && m.To[0].Email == "dc-admin@example.org" })
	mcancel()
	if err != nil {
		t.Fatalf("no mail at the SendGrid simulator: %v", err)
	}
	if len(msg.Attachments) != 1 || msg.Attachments[0].Filename != "ENG-space-sync.token" {
		t.Fatalf("attachments %+v", msg.Attachments)
	}
	emailed := msg.Attachments[0].Content
	ec, err := opener.Open(emailed)
	if err != nil {
		t.Fatalf("open the attachment: %v", err)
	}
	d, err := e.app.store.SyncDetails(context.Background(), e.tenantID(t, site), syncID)
	if err != nil {
		t.Fatal(err)
	}
	var recorded string
	for _, tk := range d.Tokens {
		if tk.Channel == store.ChannelEmail && tk.Recipient == "dc-admin@example.org" {
			recorded = tk.JTI
		}
	}
	if recorded == "" || ec.ID != recorded || ec.ID == dc.ID || ec.Message != "Please import this." {
		t.Fatalf("attachment jti %s, recorded for the email %q (download %s)", ec.ID, recorded, dc.ID)
	}
	dh, eh := tokenHeader(t, string(downloaded)), tokenHeader(t, string(emailed))
	if !slices.Equal(sortedKeys(dh), sortedKeys(eh)) || dh["typ"] != eh["typ"] || dh["alg"] != eh["alg"] || dh["enc"] != eh["enc"] {
		t.Errorf("download and email differ in form: %v / %v", dh, eh)
	}
	if strings.TrimSpace(string(downloaded)) == strings.TrimSpace(string(emailed)) {
		t.Errorf("the email re-sent the downloaded token")
	}

	// Escape closes the dialog and the focus goes back to the menu button.
	b.do("escape", chromedp.KeyEvent(kb.Escape))
	b.waitJS("the send dialog closed", `!document.getElementById('dlg-send').open && document.activeElement.classList.contains('ss-actions')`, 5*time.Second)

	// Details: the token history with the recipient.
	openAction("View details")
	b.waitJS("the details", `document.getElementById('details-body').textContent.includes('Emailed to dc-admin@example.org') && document.getElementById('details-body').textContent.includes('Downloaded')`, 10*time.Second)
	b.shot("details")

	// Third-party cookies are blocked in this browser: the app's frame
	// cannot keep one. The twin: the same origin as a first party can.
	if got := uiEval[string](b, `document.cookie = 'probe=1; SameSite=None; Secure; Path=/'; document.cookie`); got != "" {
		t.Errorf("a third-party cookie was kept: %q", got)
	}
	tab, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.Navigate(e.appURL+"/healthz")); err != nil {
		t.Fatal(err)
	}
	if got, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.cookie = 'probe=1; SameSite=None; Secure; Path=/'; document.cookie`)); err != nil || got != "probe=1" {
		t.Errorf("first-party cookie: %q %v", got, err)
	}
}

// uiAttachFrame waits for the app's cross-site iframe (a target of its own)
// and returns a context that runs actions in it.
func uiAttachFrame(t *testing.T, ctx context.Context, urlPrefix string) context.Context {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var found *target.Info
		for _, in := range infos {
			if in.Type == "iframe" && strings.HasPrefix(in.URL, urlPrefix) {
				found = in
			}
		}
		if found != nil {
			fctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(found.TargetID))
			t.Cleanup(cancel)
			if err := chromedp.Do(fctx); err != nil {
				t.Fatalf("attach to the app's frame: %v", err)
			}
			return fctx
		}
		if time.Now().After(deadline) {
			t.Fatalf("no iframe target at %s among %d targets", urlPrefix, len(infos))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// uiWaitFile waits for a finished download and returns its content.
func uiWaitFile(t *testing.T, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			if _, err := os.Stat(path + ".crdownload"); errors.Is(err, os.ErrNotExist) {
				return b
			}
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(filepath.Dir(path))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("no download at %s (the directory has %v)", path, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
