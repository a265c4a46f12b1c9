package hac

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBalloonReportsFreePages(t *testing.T) {
	const features = "features"
	tests := []struct {
		name  string
		files map[string]string // path under the fake sysfs root → contents
		want  bool
	}{
		{"no virtio", nil, false},
		{"balloon without reporting", map[string]string{
			"bus/virtio/drivers/virtio_balloon/virtio0/" + features: "0110000000000000000000000000000010000000\n"}, false},
		{"balloon with reporting", map[string]string{
			"bus/virtio/drivers/virtio_balloon/virtio0/" + features: "0110010100000000000000000000000010000000\n"}, true},
		{"reporting on a second balloon", map[string]string{
			"bus/virtio/drivers/virtio_balloon/virtio0/" + features: "01\n",
			"bus/virtio/drivers/virtio_balloon/virtio3/" + features: "0000010000\n"}, true},
		{"bit 5 set on another driver", map[string]string{
			"bus/virtio/drivers/virtio_net/virtio1/" + features: "1100010110111011\n"}, false},
		{"short features string", map[string]string{
			"bus/virtio/drivers/virtio_balloon/virtio0/" + features: "011\n"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, c := range tt.files {
				p = filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := balloonReportsFreePages(root); got != tt.want {
				t.Errorf("balloonReportsFreePages = %v, want %v", got, tt.want)
			}
		})
	}
}
