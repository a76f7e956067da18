package mediarelay

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// key30 is 30 bytes (AES_CM_128 key||salt) as base64: 40 characters.
var (
	key30 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5}, 30))
	key28 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5A}, 28)) // AEAD_AES_128_GCM
	key44 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x3C}, 44)) // AEAD_AES_256_GCM
)

func TestParseCrypto(t *testing.T) {
	ok := []struct {
		name, val string
		suite     string
		mki       []byte
		life      uint64
	}{
		{"plain 80", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, "AES_CM_128_HMAC_SHA1_80", nil, 0},
		{"32-bit tag", "2 AES_CM_128_HMAC_SHA1_32 inline:" + key30, "AES_CM_128_HMAC_SHA1_32", nil, 0},
		{"gcm 128 padded", "3 AEAD_AES_128_GCM inline:" + key28, "AEAD_AES_128_GCM", nil, 0},
		{"gcm 128 unpadded", "3 AEAD_AES_128_GCM inline:" + strings.TrimRight(key28, "="), "AEAD_AES_128_GCM", nil, 0},
		{"gcm 256", "4 AEAD_AES_256_GCM inline:" + key44, "AEAD_AES_256_GCM", nil, 0},
		{"lifetime power", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31", "AES_CM_128_HMAC_SHA1_80", nil, 1 << 31},
		{"lifetime decimal", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1048576", "AES_CM_128_HMAC_SHA1_80", nil, 1048576},
		{"lifetime and mki", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:32", "", nil, 0}, // 32-byte MKI: refused below
		{"mki only", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:1", "AES_CM_128_HMAC_SHA1_80", []byte{1}, 0},
		{"mki 4 bytes", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31|258:4", "AES_CM_128_HMAC_SHA1_80", []byte{0, 0, 1, 2}, 1 << 31},
		{"wsh and kdr 0", "9 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " WSH=128 KDR=0", "AES_CM_128_HMAC_SHA1_80", nil, 0},
		{"tabs between fields", "1\tAES_CM_128_HMAC_SHA1_80  inline:" + key30, "AES_CM_128_HMAC_SHA1_80", nil, 0},
	}
	for _, c := range ok {
		if c.suite == "" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCrypto(c.val)
			if err != nil {
				t.Fatalf("ParseCrypto: %v", err)
			}
			kl, _ := got.Profile.KeyLen()
			sl, _ := got.Profile.SaltLen()
			if got.Suite != c.suite || len(got.Key) != kl || len(got.Salt) != sl || !bytes.Equal(got.MKI, c.mki) || got.Lifetime != c.life {
				t.Fatalf("got %s key %d salt %d mki %x life %d", got, len(got.Key), len(got.Salt), got.MKI, got.Lifetime)
			}
			// Round trip through the SBC's own writer.
			again, err := ParseCrypto(got.value())
			if err != nil || !again.sameKey(CryptoAttr{Suite: got.Suite, Key: got.Key, Salt: got.Salt}) {
				t.Fatalf("value() does not parse back: %v", err)
			}
		})
	}

	bad := []struct{ name, val, why string }{
		{"empty", "", "needs a tag"},
		{"no key", "1 AES_CM_128_HMAC_SHA1_80", "needs a tag"},
		{"tag not a number", "x AES_CM_128_HMAC_SHA1_80 inline:" + key30, "tag"},
		{"tag too long", "1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + key30, "tag"},
		{"unknown suite", "1 F8_128_HMAC_SHA1_80 inline:" + key30, "unsupported suite"},
		{"null cipher suite", "1 NULL_HMAC_SHA1_80 inline:" + key30, "unsupported suite"},
		{"lower-case suite", "1 aes_cm_128_hmac_sha1_80 inline:" + key30, "unsupported suite"},
		{"suite missing", "1 inline:" + key30 + " x", "unsupported suite (not shown)"},
		{"tag missing", "inline:" + key30 + " a b", "tag (not shown)"},
		{"not inline", "1 AES_CM_128_HMAC_SHA1_80 uri:http://x/" + key30, "not inline"},
		{"no colon", "1 AES_CM_128_HMAC_SHA1_80 inline" + key30, "not inline"},
		{"not base64", "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!" + key30[4:], "not base64"},
		{"short key", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key28, "needs 30"},
		{"long key", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key44, "needs 30"},
		{"empty key", "1 AES_CM_128_HMAC_SHA1_80 inline:|2^31", "empty"},
		{"huge key", "1 AES_CM_128_HMAC_SHA1_80 inline:" + strings.Repeat("QUFB", 200), "too long"},
		{"two keys", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:4;inline:" + key30 + "|2^20|2:4", "more than one key"},
		{"mki too long", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:32", "not supported"},
		{"mki length zero", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:0", "1-128"},
		{"mki value too big", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|256:1", "does not fit"},
		{"mki not numeric", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|a:1", "does not fit"},
		{"two mkis", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:1|2:1", "two MKI"},
		{"lifetime after mki", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:1|2^20", "before the MKI"},
		{"lifetime too big", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^64", "2^48"},
		{"lifetime zero", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|0", "packets"},
		{"lifetime junk", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|forever", "packets"},
		{"too many params", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:1|x", "too many"},
		{"unencrypted srtp", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNENCRYPTED_SRTP", "not supported"},
		{"unauthenticated", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNAUTHENTICATED_SRTP", "not supported"},
		{"kdr", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " KDR=24", "KDR"},
		{"fec", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " FEC_ORDER=FEC_SRTP", "not supported"},
		{"small wsh", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " WSH=8", "WSH"},
	}
	for _, c := range bad {
		t.Run("refuse "+c.name, func(t *testing.T) {
			_, err := ParseCrypto(c.val)
			if !errors.Is(err, ErrSRTPRefused) {
				t.Fatalf("ParseCrypto(%q) = %v, want ErrSRTPRefused", c.val, err)
			}
			if !strings.Contains(err.Error(), c.why) {
				t.Fatalf("error %q does not say %q", err, c.why)
			}
			for _, k := range []string{key30, key28, key44} {
				if strings.Contains(err.Error(), k[:16]) {
					t.Fatalf("error echoes key material: %q", err)
				}
			}
		})
	}
}

// The key never shows in String, %v, %+v, %#v.
func TestCryptoAttrRedacted(t *testing.T) {
	c, err := ParseCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:" + key30)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), c.LogValue().String()} {
		if strings.Contains(s, key30[:16]) || strings.Contains(s, "a5a5") || strings.Contains(s, "165") {
			t.Fatalf("key material in %q", s)
		}
	}
}

func TestPickCrypto(t *testing.T) {
	l80 := "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30
	l32 := "2 AES_CM_128_HMAC_SHA1_32 inline:" + key30
	gcm := "3 AEAD_AES_128_GCM inline:" + key28
	junk := "4 AES_CM_128_HMAC_SHA1_80 inline:****"
	f8 := "5 F8_128_HMAC_SHA1_80 inline:" + key30
	cases := []struct {
		name   string
		vals   []string
		suites []string
		tag    int
		why    string
	}{
		{"first by our preference", []string{l32, l80}, nil, 1, ""},
		{"realm prefers gcm", []string{l80, gcm}, []string{"AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"}, 3, ""},
		{"junk line skipped", []string{junk, l32}, nil, 2, ""},
		{"unsupported suite skipped", []string{f8, l80}, nil, 1, ""},
		{"none", nil, nil, 0, "no a=crypto"},
		{"only junk", []string{junk}, nil, 0, "not base64"},
		{"only unsupported", []string{f8}, nil, 0, "unsupported suite"},
		{"suite not allowed", []string{l32}, []string{"AES_CM_128_HMAC_SHA1_80"}, 0, "no offered crypto suite is allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := pickCrypto(c.vals, SRTPPolicy{Mode: SRTPOptional, Suites: c.suites})
			if c.why != "" {
				if !errors.Is(err, ErrSRTPRefused) || !strings.Contains(err.Error(), c.why) {
					t.Fatalf("err %v, want ErrSRTPRefused saying %q", err, c.why)
				}
				return
			}
			if err != nil || got.Tag != c.tag {
				t.Fatalf("picked %v (%v), want tag %d", got, err, c.tag)
			}
		})
	}
}

func TestNewCryptoFresh(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range DefaultSuites {
		for range 3 {
			c, err := newCrypto(1, s)
			if err != nil {
				t.Fatal(err)
			}
			if seen[string(c.Key)] {
				t.Fatalf("key repeated for %s", s)
			}
			seen[string(c.Key)] = true
			if _, err := ParseCrypto(c.value()); err != nil {
				t.Fatalf("%s: own line does not parse: %v", s, err)
			}
		}
	}
	if _, err := newCrypto(1, "F8_128_HMAC_SHA1_80"); err == nil {
		t.Fatal("unsupported suite made a key")
	}
}

// Hostile a=crypto values: never a panic, and a refusal never echoes the
// inline key.
func FuzzParseCrypto(f *testing.F) {
	for _, s := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30,
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31|1:4 WSH=64",
		"3 AEAD_AES_128_GCM inline:" + key28 + " KDR=0",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:4;inline:" + key30 + "|2^20|2:4",
		"x y z", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := ParseCrypto(v)
		if err != nil {
			if !errors.Is(err, ErrSRTPRefused) {
				t.Fatalf("error %v does not wrap ErrSRTPRefused", err)
			}
			if _, inline, ok := strings.Cut(v, "inline:"); ok && len(inline) >= 16 && strings.Contains(err.Error(), inline[:16]) {
				t.Fatalf("error echoes the key: %v", err)
			}
			return
		}
		kl, _ := c.Profile.KeyLen()
		sl, _ := c.Profile.SaltLen()
		if len(c.Key) != kl || len(c.Salt) != sl || len(c.MKI) > maxMKILen {
			t.Fatalf("accepted %s with key %d salt %d mki %d", c, len(c.Key), len(c.Salt), len(c.MKI))
		}
	})
}
