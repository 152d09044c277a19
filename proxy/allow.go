package proxy

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// Registers the typed_config message types that the allow-list names, so
	// that an Any holding one of them can be unpacked.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/rbac/principals/mtls_authenticated/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// allowed lists, per message type, the fields certplane proxy implements: the
// fields of docs/resources.md. Any other field that is set makes the resource
// NACKed, so the proxy never ignores configuration in silence. Message types
// absent from this map are not implemented at all; the well-known value
// types in leafTypes are accepted whole.
var allowed = map[protoreflect.FullName][]string{
	"envoy.config.listener.v3.Listener":                               {"name", "address", "listener_filters", "access_log", "filter_chains", "default_filter_chain", "per_connection_buffer_limit_bytes"},
	"envoy.config.core.v3.Address":                                    {"socket_address"},
	"envoy.config.core.v3.SocketAddress":                              {"address", "port_value"},
	"envoy.config.listener.v3.ListenerFilter":                         {"name", "typed_config"},
	"envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector": {},
	"envoy.config.accesslog.v3.AccessLog":                             {"name", "typed_config"},
	"envoy.extensions.access_loggers.stream.v3.StdoutAccessLog":       {"log_format"},
	"envoy.config.core.v3.SubstitutionFormatString":                   {"json_format"},
	"envoy.config.listener.v3.FilterChain":                            {"name", "filter_chain_match", "transport_socket", "filters", "metadata"},
	"envoy.config.core.v3.Metadata":                                   {"filter_metadata"},
	"envoy.config.listener.v3.FilterChainMatch":                       {"server_names"},
	"envoy.config.listener.v3.Filter":                                 {"name", "typed_config"},
	"envoy.config.core.v3.TransportSocket":                            {"name", "typed_config"},
	"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext":  {"common_tls_context", "require_client_certificate"},
	"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":    {"common_tls_context", "sni"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext": {
		"tls_params", "alpn_protocols", "tls_certificate_sds_secret_configs",
		"validation_context_sds_secret_config", "combined_validation_context", "validation_context",
	},
	"envoy.extensions.transport_sockets.tls.v3.TlsParameters":   {"tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites"},
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig": {"name", "sds_config"},
	"envoy.config.core.v3.ConfigSource":                         {"ads", "resource_api_version"},
	"envoy.config.core.v3.AggregatedConfigSource":               {},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext": {
		"default_validation_context", "validation_context_sds_secret_config",
	},
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext": {
		"trusted_ca", "crl", "match_typed_subject_alt_names", "verify_certificate_hash",
		"verify_certificate_spki", "allow_expired_certificate", "only_verify_leaf_cert_crl",
		"max_verify_depth", "suppress_client_ca_list", "trust_chain_verification",
	},
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher": {"san_type", "matcher"},
	"envoy.type.matcher.v3.StringMatcher":                             {"exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"},
	"envoy.type.matcher.v3.RegexMatcher":                              {"regex"},
	"envoy.config.core.v3.DataSource":                                 {"inline_bytes", "inline_string"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": {
		"stat_prefix", "codec_type", "rds", "http_filters", "use_remote_address", "xff_num_trusted_hops",
		"forward_client_cert_details", "set_current_client_cert_details", "common_http_protocol_options",
		"request_headers_timeout", "stream_idle_timeout", "max_request_headers_kb", "access_log",
		"normalize_path", "merge_slashes", "path_with_escaped_slashes_action", "http2_protocol_options",
	},
	"envoy.config.core.v3.Http2ProtocolOptions":                                                                     {"max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size"},
	"envoy.extensions.filters.http.header_mutation.v3.HeaderMutation":                                               {"mutations"},
	"envoy.extensions.filters.http.header_mutation.v3.Mutations":                                                    {"request_mutations"},
	"envoy.config.common.mutation_rules.v3.HeaderMutation":                                                          {"remove", "remove_on_match"},
	"envoy.config.common.mutation_rules.v3.HeaderMutation.RemoveOnMatch":                                            {"key_matcher"},
	"envoy.extensions.filters.network.http_connection_manager.v3.Rds":                                               {"route_config_name", "config_source"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":                                        {"name", "typed_config"},
	"envoy.extensions.filters.http.router.v3.Router":                                                                {},
	"envoy.extensions.filters.http.rbac.v3.RBAC":                                                                    {"rules"},
	"envoy.extensions.filters.http.rbac.v3.RBACPerRoute":                                                            {"rbac"},
	"envoy.config.rbac.v3.RBAC":                                                                                     {"action", "policies"},
	"envoy.config.rbac.v3.Policy":                                                                                   {"permissions", "principals"},
	"envoy.config.rbac.v3.Permission":                                                                               {"any"},
	"envoy.config.rbac.v3.Principal":                                                                                {"and_ids", "or_ids", "not_id", "any", "authenticated", "custom", "sourced_metadata"},
	"envoy.config.rbac.v3.SourcedMetadata":                                                                          {"metadata_matcher", "metadata_source"},
	"envoy.type.matcher.v3.MetadataMatcher":                                                                         {"filter", "path", "value"},
	"envoy.type.matcher.v3.MetadataMatcher.PathSegment":                                                             {"key"},
	"envoy.type.matcher.v3.ValueMatcher":                                                                            {"string_match"},
	"envoy.config.rbac.v3.Principal.Set":                                                                            {"ids"},
	"envoy.config.rbac.v3.Principal.Authenticated":                                                                  {"principal_name"},
	"envoy.config.core.v3.TypedExtensionConfig":                                                                     {"name", "typed_config"},
	"envoy.extensions.rbac.principals.mtls_authenticated.v3.Config":                                                 {"san_matcher", "any_validated_client_certificate"},
	"envoy.config.core.v3.HttpProtocolOptions":                                                                      {"idle_timeout", "headers_with_underscores_action"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails": {"subject", "cert", "chain", "uri", "dns"},
	"envoy.config.route.v3.RouteConfiguration":                                                                      {"name", "virtual_hosts", "request_headers_to_remove", "request_headers_to_add", "ignore_port_in_host_matching"},
	"envoy.config.route.v3.VirtualHost":                                                                             {"name", "domains", "routes", "request_headers_to_remove", "request_headers_to_add"},
	"envoy.config.route.v3.Route":                                                                                   {"name", "match", "route", "direct_response", "request_headers_to_remove", "request_headers_to_add", "typed_per_filter_config"},
	"envoy.config.route.v3.RouteMatch":                                                                              {"prefix", "path", "headers", "tls_context"},
	"envoy.config.route.v3.HeaderMatcher":                                                                           {"name", "string_match", "present_match", "invert_match", "treat_missing_header_as_empty"},
	"envoy.config.route.v3.RouteMatch.TlsContextMatchOptions":                                                       {"presented"},
	"envoy.config.route.v3.DirectResponseAction":                                                                    {"status", "body"},
	"envoy.config.route.v3.RouteAction":                                                                             {"cluster", "timeout", "idle_timeout", "retry_policy"},
	"envoy.config.route.v3.RetryPolicy":                                                                             {"retry_on", "num_retries", "retry_host_predicate", "host_selection_retry_max_attempts"},
	"envoy.config.route.v3.RetryPolicy.RetryHostPredicate":                                                          {"name", "typed_config"},
	"envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate":                                          {},
	"envoy.config.core.v3.HeaderValueOption":                                                                        {"header", "append_action", "keep_empty_value"},
	"envoy.config.core.v3.HeaderValue":                                                                              {"key", "value"},
	"envoy.config.cluster.v3.Cluster": {
		"name", "connect_timeout", "lb_policy", "type", "eds_cluster_config", "dns_lookup_family",
		"load_assignment", "health_checks", "outlier_detection", "transport_socket", "common_lb_config",
		"per_connection_buffer_limit_bytes",
	},
	"envoy.config.cluster.v3.Cluster.CommonLbConfig":           {"healthy_panic_threshold"},
	"envoy.type.v3.Percent":                                    {"value"},
	"envoy.config.cluster.v3.Cluster.EdsClusterConfig":         {"eds_config"},
	"envoy.config.endpoint.v3.ClusterLoadAssignment":           {"cluster_name", "endpoints"},
	"envoy.config.endpoint.v3.LocalityLbEndpoints":             {"lb_endpoints"},
	"envoy.config.endpoint.v3.LbEndpoint":                      {"endpoint"},
	"envoy.config.endpoint.v3.Endpoint":                        {"address"},
	"envoy.config.core.v3.HealthCheck":                         {"timeout", "interval", "no_traffic_interval", "healthy_threshold", "unhealthy_threshold", "http_health_check"},
	"envoy.config.core.v3.HealthCheck.HttpHealthCheck":         {"path"},
	"envoy.config.cluster.v3.OutlierDetection":                 {"consecutive_5xx", "consecutive_gateway_failure", "interval", "base_ejection_time", "max_ejection_percent", "enforcing_success_rate"},
	"envoy.extensions.transport_sockets.tls.v3.Secret":         {"name", "tls_certificate", "validation_context"},
	"envoy.extensions.transport_sockets.tls.v3.TlsCertificate": {"certificate_chain", "private_key"},
}

// leafTypes are value types accepted whole wherever an allowed field holds them.
var leafTypes = map[protoreflect.FullName]bool{
	"google.protobuf.Duration":    true,
	"google.protobuf.UInt32Value": true,
	"google.protobuf.BoolValue":   true,
	"google.protobuf.Struct":      true,
	"google.protobuf.Value":       true,
	"google.protobuf.ListValue":   true,
}

// allowedEnums restricts enum fields to the values the proxy implements.
// A field absent here takes any value the allow-list lets through.
var allowedEnums = map[protoreflect.FullName][]string{
	"envoy.config.core.v3.SocketAddress.protocol":                                                  {"TCP"},
	"envoy.config.core.v3.ConfigSource.resource_api_version":                                       {"V3"},
	"envoy.config.core.v3.HttpProtocolOptions.headers_with_underscores_action":                     {"ALLOW", "REJECT_REQUEST", "DROP_HEADER"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.codec_type": {"AUTO"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.forward_client_cert_details": {
		"SANITIZE", "SANITIZE_SET", "APPEND_FORWARD", "FORWARD_ONLY",
	},
	"envoy.config.rbac.v3.RBAC.action":                                         {"ALLOW"},
	"envoy.config.cluster.v3.Cluster.lb_policy":                                {"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"},
	"envoy.config.cluster.v3.Cluster.type":                                     {"STATIC", "STRICT_DNS", "EDS"},
	"envoy.config.cluster.v3.Cluster.dns_lookup_family":                        {"AUTO", "V4_ONLY", "V6_ONLY", "V4_PREFERRED", "ALL"},
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.san_type": {"DNS", "URI", "EMAIL", "IP_ADDRESS"},
}

var allowSets = func() map[protoreflect.FullName]map[string]bool {
	m := make(map[protoreflect.FullName]map[string]bool, len(allowed))
	for msg, fields := range allowed {
		set := make(map[string]bool, len(fields))
		for _, f := range fields {
			set[f] = true
		}
		m[msg] = set
	}
	return m
}()

// unsupportedError names the resource and the field path that the proxy does
// not implement; it is the NACK's error_detail.
type unsupportedError struct {
	resource string
	path     string
	what     string
}

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("%s: %s %s not implemented by certplane proxy", e.resource, e.path, e.what)
}

// checkFields walks every set field of m, unpacking Any typed_configs, and
// returns an *unsupportedError for the first one outside the allow-list.
// resource names the resource for the message ("listener \"public\"").
func checkFields(resource string, m proto.Message) error {
	return walk(resource, "", m.ProtoReflect())
}

func walk(resource, path string, m protoreflect.Message) error {
	name := m.Descriptor().FullName()
	if leafTypes[name] {
		return nil
	}
	if name == "google.protobuf.Any" {
		a, ok := m.Interface().(*anypb.Any)
		if !ok {
			var tmp anypb.Any
			proto.Merge(&tmp, m.Interface())
			a = &tmp
		}
		inner, err := a.UnmarshalNew()
		if err != nil {
			return &unsupportedError{resource, path, fmt.Sprintf("typed_config type %q is", typeName(a.GetTypeUrl()))}
		}
		return walk(resource, path+"<"+string(inner.ProtoReflect().Descriptor().FullName())+">", inner.ProtoReflect())
	}
	set, known := allowSets[name]
	if !known {
		return &unsupportedError{resource, orRoot(path), fmt.Sprintf("(message %s) is", name)}
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fp := join(path, string(fd.Name()))
		if !set[string(fd.Name())] {
			err = &unsupportedError{resource, fp, "is set but"}
			return false
		}
		err = walkValue(resource, fp, fd, v)
		return err == nil
	})
	return err
}

func walkValue(resource, path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch {
	case fd.IsList():
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			if err := walkSingle(resource, path+"["+strconv.Itoa(i)+"]", fd, l.Get(i)); err != nil {
				return err
			}
		}
		return nil
	case fd.IsMap():
		var err error
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			err = walkSingle(resource, path+"["+k.String()+"]", fd.MapValue(), mv)
			return err == nil
		})
		return err
	default:
		return walkSingle(resource, path, fd, v)
	}
}

func walkSingle(resource, path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return walk(resource, path, v.Message())
	case protoreflect.EnumKind:
		vals, restricted := allowedEnums[fd.FullName()]
		if !restricted {
			return nil
		}
		ev := fd.Enum().Values().ByNumber(v.Enum())
		got := strconv.Itoa(int(v.Enum()))
		if ev != nil {
			got = string(ev.Name())
		}
		for _, ok := range vals {
			if ok == got {
				return nil
			}
		}
		return &unsupportedError{resource, path, fmt.Sprintf("value %s is", got)}
	}
	return nil
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func orRoot(path string) string {
	if path == "" {
		return "(resource)"
	}
	return path
}

func typeName(url string) string {
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		return url[i+1:]
	}
	return url
}
