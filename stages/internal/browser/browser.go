// Package browser starts Debian's headless chromium for tests that look at pages the way
// people do (github.com/chromedp/chromedp). Tests skip, saying why, where chromium is not
// installed; `make deps` installs it.
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds the chromium binary ("" when there is none).
func Path() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless chromium with a fresh profile and returns a tab's context, ended
// (and the browser with it) when the test ends; limit single steps with Within. The flags keep
// chromium off the network: without them it keeps calling Google's services, which here only
// floods refused connections.
func New(t testing.TB) context.Context {
	t.Helper()
	bin := Path()
	if bin == "" {
		t.Skip("browser: chromium is not installed (make deps installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("browser: starting %s: %v", bin, err)
	}
	return bctx
}

// Within derives a context that ends after d, for one step: a page that never loads fails
// the test instead of hanging it.
func Within(t testing.TB, ctx context.Context, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	return ctx
}

// Screenshot saves a PNG of the window (the whole page with full) named name in the test's
// artifact folder and, when PERSONCLUSTER_SCREENSHOTS names a folder, there too (the README's
// picture comes from it). Sections that the page lets the browser skip while off screen
// (content-visibility) are drawn first.
func Screenshot(t testing.TB, ctx context.Context, name string, full bool) string {
	t.Helper()
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	if _, err := chromedp.Run(Within(t, ctx, 30*time.Second), chromedp.Evaluate[any](
		`for (const e of document.querySelectorAll("*")) if (getComputedStyle(e).contentVisibility === "auto") e.style.contentVisibility = "visible"`)); err != nil {
		t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	png, err := chromedp.Run(Within(t, ctx, 30*time.Second), shot)
	if err != nil {
		t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	dirs := []string{}
	if at, ok := t.(interface{ ArtifactDir() string }); ok {
		dirs = append(dirs, at.ArtifactDir())
	}
	if d := os.Getenv("PERSONCLUSTER_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	var last string
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		last = filepath.Join(d, name)
		if err := os.WriteFile(last, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s", last)
	return last
}

// ImageReport is what ImagesLoaded found.
type ImageReport struct {
	Total  int      `json:"total"`
	Broken []string `json:"broken"` // src of each image whose naturalWidth is 0
}

// ImagesLoaded loads every image of the page now (lazy ones included) and reports which failed.
func ImagesLoaded(ctx context.Context) (ImageReport, error) {
	const script = `(async () => {
  const imgs = [...document.images];
  for (const img of imgs) img.loading = "eager";
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(r => { img.onload = img.onerror = r; })));
  return {total: imgs.length, broken: imgs.filter(i => i.naturalWidth === 0).map(i => i.getAttribute("src"))};
})()`
	return chromedp.Run(ctx, chromedp.Evaluate[ImageReport](script, chromedp.EvalAwaitPromise))
}
