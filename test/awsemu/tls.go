package awsemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// selfSignedTLS is a throwaway certificate for 127.0.0.1 and the pool that
// trusts it. It is generated per Server so no key material is checked in.
type selfSignedTLS struct {
	cert tls.Certificate
	pool *x509.CertPool
	pem  []byte
}

func newSelfSignedTLS() (*selfSignedTLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("awsemu: generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("awsemu: generate certificate serial: %w", err)
	}
	// Validity uses the real clock, not Options.Clock: it is checked by the
	// client's TLS stack against the real time.
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "awsemu"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("awsemu: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("awsemu: parse certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &selfSignedTLS{
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		pool: pool,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

func (s *selfSignedTLS) listener(inner net.Listener) net.Listener {
	return tls.NewListener(inner, &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		MinVersion:   tls.VersionTLS12,
		// HTTP/1.1 only: DropResponse hijacks connections, which HTTP/2
		// does not allow.
		NextProtos: []string{"http/1.1"},
	})
}

// CertificatePEM returns the PEM-encoded self-signed certificate of a TLS
// server (nil for plain HTTP), for out-of-process clients that must trust it.
func (s *Server) CertificatePEM() []byte {
	if s.tls == nil {
		return nil
	}
	return s.tls.pem
}
