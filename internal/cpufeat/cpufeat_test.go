package cpufeat

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		v    string
		want []string
	}{
		{"", nil},
		{"avx512", []string{"avx512"}},
		{" AVX512 , vnni,,asm", []string{"avx512", "vnni", "asm"}},
	} {
		off, err := parse(c.v)
		if err != nil {
			t.Fatalf("parse(%q): %v", c.v, err)
		}
		if len(off) != len(c.want) {
			t.Errorf("parse(%q) = %v, want %v", c.v, off, c.want)
		}
		for _, w := range c.want {
			if !off[w] {
				t.Errorf("parse(%q) = %v, want %v", c.v, off, c.want)
			}
		}
	}
	if _, err := parse("avx512,sse9"); err == nil || !strings.Contains(err.Error(), `"sse9"`) {
		t.Errorf("parse of an unknown feature: %v, want an error naming it", err)
	}
}

// Switching a feature off switches off everything that builds on it, and
// "asm" switches off all of them, whatever the CPU has.
func TestSetImplications(t *testing.T) {
	defer set(map[string]bool{}) // the tests' own environment is empty or CI's
	for _, name := range []string{"asm", "avx2", "asimd"} {
		set(map[string]bool{name: true})
		switch name {
		case "asm":
			if X86.AVX2 || X86.AVX512 || X86.AVX512VNNI || X86.AVXVNNI || ARM64.ASIMD || ARM64.ASIMDDP {
				t.Errorf("asm off: %+v %+v", X86, ARM64)
			}
		case "avx2":
			if X86.AVX2 || X86.AVX512 || X86.AVX512VNNI || X86.AVXVNNI {
				t.Errorf("avx2 off: %+v", X86)
			}
		case "asimd":
			if ARM64.ASIMD || ARM64.ASIMDDP {
				t.Errorf("asimd off: %+v", ARM64)
			}
		}
	}
	set(map[string]bool{"avx512": true})
	if X86.AVX512 || X86.AVX512VNNI {
		t.Errorf("avx512 off: %+v", X86)
	}
	set(map[string]bool{"vnni": true})
	if X86.AVX512VNNI || X86.AVXVNNI {
		t.Errorf("vnni off: %+v", X86)
	}
}
