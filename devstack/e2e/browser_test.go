package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// chromium is Debian's Chromium (installed by .ci/run), or $CHROMIUM.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed at /usr/bin/chromium: apt-get install chromium (.ci/run does)")
	return ""
}

// viewport is the browser's size: the README screenshots are taken at it.
const viewportW, viewportH = 1200, 820

// newBrowser starts headless Chromium with third-party cookies blocked, as
// browsers now do, and downloads going to a directory of the test.
func newBrowser(t *testing.T) (ctx context.Context, downloads string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(viewportW, viewportH),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
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
	downloads = t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads, EventsEnabled: new(true),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetCookieControls, network.SetCookieControlsParams{EnableThirdPartyCookieRestriction: true}); err != nil {
		t.Fatal(err)
	}
	return ctx, downloads
}

// tab is one browser tab; frame, when set, is the cross-site app iframe
// inside it (a target of its own).
type tab struct {
	t     *testing.T
	name  string
	page  context.Context
	frame context.Context
	shots *shots
	// lastFrame is the target id of the last iframe attached, so that a
	// reload waits for the new one.
	lastFrame target.ID
}

// ctx is where actions run: the app's iframe when attached, else the page.
func (b *tab) ctx() context.Context {
	if b.frame != nil {
		return b.frame
	}
	return b.page
}

// do runs steps, failing the test with a screenshot when they fail.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx(), 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

func (b *tab) fail(what string, err error) {
	b.t.Helper()
	b.shots.save(b.page, b.frame, "failed-"+b.name+"-"+strings.ReplaceAll(what, " ", "-"), false)
	b.t.Fatalf("%s: %s: %v", b.name, what, err)
}

// shot saves a screenshot of the tab; forDocs marks the README's.
func (b *tab) shot(name string, forDocs bool) {
	b.t.Helper()
	b.shots.save(b.page, b.frame, name, forDocs)
}

// waitJS waits until a JavaScript expression is truthy, across navigations.
func (b *tab) waitJS(what, expr string) {
	b.t.Helper()
	b.waitJSFor(what, expr, 60*time.Second)
}

func (b *tab) waitJSFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx(), timeout)
	defer cancel()
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			b.fail("waiting for "+what, fmt.Errorf("%s is not true after %v (last error: %v)", expr, timeout, last))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// eval evaluates a JavaScript expression (awaiting a promise).
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx(), 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return v
}

// text is the trimmed text content of the first element matching sel.
func (b *tab) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(eval[string](b, `(() => { const e = document.querySelector(`+jsString(sel)+`); return e ? e.textContent : '<no '+`+jsString(sel)+`+'>'; })()`))
}

// attachFrame waits for the app's iframe (cross-site, so a target of its
// own) and runs the next actions in it.
func (b *tab) attachFrame(urlPrefix string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		infos, err := chromedp.Targets(b.page)
		if err != nil {
			b.t.Fatal(err)
		}
		var found *target.Info
		for _, in := range infos {
			if in.Type == "iframe" && strings.HasPrefix(in.URL, urlPrefix) && in.TargetID != b.lastFrame {
				found = in
			}
		}
		if found != nil {
			fctx, cancel := chromedp.NewContext(b.page, chromedp.WithTargetID(found.TargetID))
			b.t.Cleanup(cancel)
			if err := chromedp.Do(fctx); err != nil {
				b.t.Fatalf("attach to the app's frame: %v", err)
			}
			b.frame, b.lastFrame = fctx, found.TargetID
			return
		}
		if time.Now().After(deadline) {
			b.fail("attach the app's iframe", fmt.Errorf("no iframe target at %s among %d targets", urlPrefix, len(infos)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// frameURL is the URL the app's iframe was loaded with (it carries the
// page JWT).
func (b *tab) frameURL() string {
	b.t.Helper()
	infos, err := chromedp.Targets(b.page)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, in := range infos {
		if in.TargetID == b.lastFrame {
			return in.URL
		}
	}
	b.t.Fatal("the app's iframe is gone")
	return ""
}

// navigate loads url in the tab's page (leaving any iframe).
func (b *tab) navigate(url string) {
	b.t.Helper()
	b.frame = nil
	b.do("open "+url, chromedp.Navigate(url))
}

// dropFile drags a file from disk onto the element sel and drops it, as a
// user dragging it from the file manager: the browser's own drag-and-drop
// (Input.dispatchDragEvent with a file list), so the page receives real
// dragenter/dragover/drop events with the file in their DataTransfer.
func (b *tab) dropFile(sel, path string) {
	b.t.Helper()
	xy := eval[[]float64](b, `(() => { const e = document.querySelector(`+jsString(sel)+`); e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`)
	data := &input.DragData{Items: []*input.DragDataItem{}, Files: []string{path}, DragOperationsMask: 1}
	for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
		ctx, cancel := context.WithTimeout(b.ctx(), 10*time.Second)
		_, err := chromedp.Call(ctx, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: xy[0], Y: xy[1], Data: data})
		cancel()
		if err != nil {
			b.fail("drag "+filepath.Base(path)+" onto "+sel, err)
		}
	}
}

// shots saves a screenshot of every step, numbered, into the artifacts
// directory, and the README's into docs/screenshots with -e2e.update-docs.
type shots struct {
	t    *testing.T
	dir  string
	docs string // "" unless -e2e.update-docs on the run that makes them
	n    int
}

func newShots(t *testing.T, docs bool) *shots {
	t.Helper()
	// $E2E_ARTIFACTS, else the CI's $ARTIFACTS_DIR/e2e (as the other
	// browser tests use), else a temporary directory of the test.
	dir := os.Getenv("E2E_ARTIFACTS")
	if dir == "" && os.Getenv("ARTIFACTS_DIR") != "" {
		dir = filepath.Join(os.Getenv("ARTIFACTS_DIR"), "e2e")
	}
	if dir == "" {
		dir = t.TempDir()
	} else {
		dir = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of every step: %s", dir)
	s := &shots{t: t, dir: dir}
	if docs && *updateDocs {
		s.docs = filepath.Join(repoRoot(t), "docs", "screenshots")
		if err := os.MkdirAll(s.docs, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// save captures the page's viewport once animations have finished in it
// and in frame (the app's iframe, or nil); forDocs also writes it to
// docs/screenshots/<name>.png.
func (s *shots) save(page, frame context.Context, name string, forDocs bool) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(page, 15*time.Second)
	defer cancel()
	// Dialogs and flags animate in: wait until nothing runs.
	settle := `document.getAnimations().filter(a => a.playState === 'running').length === 0`
	for _, c := range []context.Context{page, frame} {
		if c != nil {
			pctx, pcancel := context.WithTimeout(c, 5*time.Second)
			_, _ = chromedp.Run(pctx, chromedp.Poll[bool](settle, chromedp.WithPollingTimeout(3*time.Second), chromedp.WithPollingInterval(30*time.Millisecond)))
			pcancel()
		}
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		s.t.Logf("screenshot %s: %v", name, err)
		return
	}
	s.n++
	p := filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if forDocs && s.docs != "" {
		if err := os.WriteFile(filepath.Join(s.docs, name+".png"), png, 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
}

// waitDownload waits for a finished download and returns its content.
func waitDownload(t *testing.T, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
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
