package evaluate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadImglab(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "set.xml")
	doc := `<?xml version='1.0' encoding='ISO-8859-1'?>
<dataset><images>
  <image file='a.jpg'><box top='10' left='20' width='30' height='40'/><box top='1' left='2' width='3' height='4' ignore='1'/></image>
  <image file='b.jpg'/>
</images></dataset>`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	images, err := LoadImglab(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 2 || images[0].File != filepath.Join(dir, "a.jpg") || len(images[1].Faces) != 0 {
		t.Fatalf("%+v", images)
	}
	if f, ig := images[0].Faces, images[0].Ignored; len(f) != 1 || f[0] != (Box{10, 50, 50, 20}) || len(ig) != 1 || ig[0] != (Box{1, 5, 5, 2}) {
		t.Errorf("faces %v, ignored %v", f, ig)
	}
	for name, p := range map[string]string{"missing": filepath.Join(dir, "none.xml"), "not xml": writeFile(t, dir, "bad.xml", "<dataset><images>")} {
		if _, err := LoadImglab(p); err == nil || !strings.HasPrefix(err.Error(), "evaluate: ") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
