package envoy

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// StdoutAccessLogName is the access logger every certplane log uses.
const StdoutAccessLogName = "envoy.access_loggers.stdout"

// ListenerLogFormat is the JSON object of the listener-level access log: one
// line per downstream connection, handshake failures included. Keys map to
// Envoy command operators; "listener" is filled with the literal listener
// name by ListenerAccessLog. %DOWNSTREAM_TRANSPORT_FAILURE_REASON% is only
// populated at this level, which is why this log exists beside the HTTP one.
func ListenerLogFormat(listener string) map[string]string {
	return map[string]string{
		"start_time":        "%START_TIME%",
		"listener":          listener,
		"client":            "%DOWNSTREAM_REMOTE_ADDRESS%",
		"sni":               "%REQUESTED_SERVER_NAME%",
		"tls_version":       "%DOWNSTREAM_TLS_VERSION%",
		"tls_cipher":        "%DOWNSTREAM_TLS_CIPHER%",
		"peer_subject":      "%DOWNSTREAM_PEER_SUBJECT%",
		"peer_issuer":       "%DOWNSTREAM_PEER_ISSUER%",
		"peer_serial":       "%DOWNSTREAM_PEER_SERIAL%",
		"peer_not_before":   "%DOWNSTREAM_PEER_CERT_V_START%",
		"peer_not_after":    "%DOWNSTREAM_PEER_CERT_V_END%",
		"transport_failure": "%DOWNSTREAM_TRANSPORT_FAILURE_REASON%",
		"duration_ms":       "%DURATION%",
		"bytes_received":    "%BYTES_RECEIVED%",
		"bytes_sent":        "%BYTES_SENT%",
	}
}

// HTTPLogFormat is the JSON object of the HTTP connection manager's access
// log: one line per request.
func HTTPLogFormat(listener string) map[string]string {
	return map[string]string{
		"start_time":     "%START_TIME%",
		"listener":       listener,
		"client":         "%DOWNSTREAM_REMOTE_ADDRESS%",
		"method":         "%REQ(:METHOD)%",
		"path":           "%REQ(:PATH)%",
		"protocol":       "%PROTOCOL%",
		"status":         "%RESPONSE_CODE%",
		"upstream_host":  "%UPSTREAM_HOST%",
		"duration_ms":    "%DURATION%",
		"bytes_received": "%BYTES_RECEIVED%",
		"bytes_sent":     "%BYTES_SENT%",
		"peer_subject":   "%DOWNSTREAM_PEER_SUBJECT%",
		"peer_serial":    "%DOWNSTREAM_PEER_SERIAL%",
	}
}

// ListenerAccessLog is the listener-level JSON access log on stdout.
func ListenerAccessLog(listener string) (*accesslogv3.AccessLog, error) {
	return StdoutAccessLog(ListenerLogFormat(listener))
}

// HTTPAccessLog is the per-request JSON access log on stdout.
func HTTPAccessLog(listener string) (*accesslogv3.AccessLog, error) {
	return StdoutAccessLog(HTTPLogFormat(listener))
}

// StdoutAccessLog writes one JSON object per entry to Envoy's stdout.
func StdoutAccessLog(format map[string]string) (*accesslogv3.AccessLog, error) {
	fields := make(map[string]any, len(format))
	for k, v := range format {
		fields[k] = v
	}
	js, err := structpb.NewStruct(fields)
	if err != nil {
		return nil, fmt.Errorf("access log format: %w", err)
	}
	cfg, err := typed(&streamv3.StdoutAccessLog{
		AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: js},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return &accesslogv3.AccessLog{
		Name:       StdoutAccessLogName,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: cfg},
	}, nil
}
