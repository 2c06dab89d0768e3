package redact

import "testing"

func TestRedactHidesCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"https://me:tok@host/w.pth":                                "https://%E2%80%A6@host/w.pth",
		"https://b.s3.amazonaws.com/w.pth?X-Amz-Signature=abc&a=1": "https://b.s3.amazonaws.com/w.pth?X-Amz-Signature=%E2%80%A6&a=%E2%80%A6",
		"https://host/w.pth":                                       "https://host/w.pth",
		"torchvision:resnet18":                                     "torchvision:resnet18",
		"/data/w.pth":                                              "/data/w.pth",
	} {
		got := URL(in)
		if got != want {
			t.Errorf("URL(%s) = %s, want %s", in, got, want)
		}
	}
}
