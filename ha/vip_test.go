package ha

import (
	"bytes"
	"encoding/hex"
	"net"
	"testing"
)

func TestGARPFrame(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:aa:bb:cc")
	ip := [4]byte{203, 0, 113, 1}
	want := map[uint16]string{
		// dst bcast, src, ARP, htype 1, ptype IPv4, 6, 4, oper, sha, spa, tha, tpa
		1: "ffffffffffff" + "0200 00aabbcc" + "0806" + "0001" + "0800" + "06" + "04" + "0001" + "020000aabbcc" + "cb007101" + "000000000000" + "cb007101",
		2: "ffffffffffff" + "0200 00aabbcc" + "0806" + "0001" + "0800" + "06" + "04" + "0002" + "020000aabbcc" + "cb007101" + "ffffffffffff" + "cb007101",
	}
	for oper, w := range want {
		wb, err := hex.DecodeString(stripSpaces(w))
		if err != nil {
			t.Fatal(err)
		}
		if got := garpFrame(mac, ip, oper); !bytes.Equal(got, wb) {
			t.Errorf("oper %d:\n got %x\nwant %x", oper, got, wb)
		}
	}
}

func stripSpaces(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)) }
