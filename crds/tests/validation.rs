//! Rejections: each invalid manifest must be refused with the right field path.

use brindle_crds::document::resource_from_value;
use brindle_crds::{Resource, parse_documents, parse_resources};
use serde_json::{Value, json};

/// Applies `patch` (JSON pointer → value, or null to remove) to a valid base document.
fn variant(base: &Value, patch: &[(&str, Value)]) -> Value {
    let mut v = base.clone();
    for (ptr, val) in patch {
        let (parent, key) = ptr.rsplit_once('/').expect("pointer");
        let target = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).expect(ptr)
        };
        match target {
            Value::Object(o) => {
                if val.is_null() {
                    o.remove(key);
                } else {
                    o.insert(key.to_string(), val.clone());
                }
            }
            Value::Array(a) => a[key.parse::<usize>().unwrap()] = val.clone(),
            _ => panic!("{ptr}"),
        }
    }
    v
}

fn pool() -> Value {
    json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool", "metadata": {"name": "p"},
           "spec": {"cidr": "198.18.0.0/16"}})
}
fn peer() -> Value {
    json!({"apiVersion": "brindle.dev/v1", "kind": "BGPPeer", "metadata": {"name": "tor"},
           "spec": {"peerIP": "198.19.0.1", "asNumber": 65001}})
}
fn bgpconf() -> Value {
    json!({"apiVersion": "brindle.dev/v1", "kind": "BGPConfiguration", "metadata": {"name": "default"},
           "spec": {"asNumber": 64512}})
}
fn gnp() -> Value {
    json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
           "metadata": {"name": "gnp"},
           "spec": {"selector": "all()", "ingress": [{"action": "Allow", "protocol": "TCP",
                    "source": {"nets": ["198.18.0.0/16"]}, "destination": {"ports": [80]}}]}})
}
fn filter() -> Value {
    json!({"apiVersion": "brindle.dev/v1", "kind": "BGPFilter", "metadata": {"name": "f"},
           "spec": {"exportV4": [{"action": "Accept", "matchOperator": "In", "cidr": "198.18.0.0/16"}]}})
}
fn knp() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "np", "namespace": "default"},
           "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                    "ingress": [{"ports": [{"protocol": "TCP", "port": 5432}]}]}})
}

fn cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        // IPPool
        (
            "cidr host bits",
            variant(&pool(), &[("/spec/cidr", json!("198.18.0.1/16"))]),
            "spec.cidr",
        ),
        (
            "cidr garbage",
            variant(&pool(), &[("/spec/cidr", json!("banana"))]),
            "spec.cidr",
        ),
        (
            "cidr no prefix",
            variant(&pool(), &[("/spec/cidr", json!("198.18.0.0"))]),
            "spec.cidr",
        ),
        (
            "cidr loopback",
            variant(&pool(), &[("/spec/cidr", json!("127.0.0.0/8"))]),
            "spec.cidr",
        ),
        (
            "cidr link-local",
            variant(&pool(), &[("/spec/cidr", json!("169.254.0.0/16"))]),
            "spec.cidr",
        ),
        (
            "cidr v6 link-local",
            variant(&pool(), &[("/spec/cidr", json!("fe80::/64"))]),
            "spec.cidr",
        ),
        (
            "cidr v6 loopback",
            variant(&pool(), &[("/spec/cidr", json!("::1/128"))]),
            "spec.cidr",
        ),
        (
            "cidr multicast",
            variant(&pool(), &[("/spec/cidr", json!("224.0.0.0/8"))]),
            "spec.cidr",
        ),
        (
            "block too small v4",
            variant(&pool(), &[("/spec/blockSize", json!(19))]),
            "spec.blockSize",
        ),
        (
            "block too big v4",
            variant(&pool(), &[("/spec/blockSize", json!(33))]),
            "spec.blockSize",
        ),
        (
            "block v6 out of range",
            variant(
                &pool(),
                &[
                    ("/spec/cidr", json!("2001:db8::/48")),
                    ("/spec/blockSize", json!(112)),
                ],
            ),
            "spec.blockSize",
        ),
        (
            "block larger than pool",
            variant(&pool(), &[("/spec/cidr", json!("198.18.0.0/28"))]),
            "spec.blockSize",
        ),
        (
            "ipip with v6",
            variant(
                &pool(),
                &[
                    ("/spec/cidr", json!("2001:db8::/48")),
                    ("/spec/ipipMode", json!("Always")),
                ],
            ),
            "spec.ipipMode",
        ),
        (
            "ipip and vxlan",
            variant(
                &pool(),
                &[
                    ("/spec/ipipMode", json!("Always")),
                    ("/spec/vxlanMode", json!("CrossSubnet")),
                ],
            ),
            "spec.vxlanMode",
        ),
        (
            "bad ipip mode",
            variant(&pool(), &[("/spec/ipipMode", json!("Sometimes"))]),
            "spec.ipipMode",
        ),
        (
            "bad node selector",
            variant(&pool(), &[("/spec/nodeSelector", json!("rack == "))]),
            "spec.nodeSelector",
        ),
        (
            "unknown field",
            variant(&pool(), &[("/spec/blocksize", json!(26))]),
            "spec",
        ),
        (
            "missing cidr",
            variant(&pool(), &[("/spec/cidr", Value::Null)]),
            "spec",
        ),
        (
            "bad name",
            variant(&pool(), &[("/metadata/name", json!("Bad_Name"))]),
            "metadata.name",
        ),
        (
            "no name",
            variant(&pool(), &[("/metadata/name", Value::Null)]),
            "metadata.name",
        ),
        (
            "empty allowedUses",
            variant(&pool(), &[("/spec/allowedUses", json!([]))]),
            "spec.allowedUses",
        ),
        (
            "loadbalancer mixed",
            variant(
                &pool(),
                &[("/spec/allowedUses", json!(["Workload", "LoadBalancer"]))],
            ),
            "spec.allowedUses",
        ),
        (
            "nat not bool",
            variant(&pool(), &[("/spec/natOutgoing", json!("yes"))]),
            "spec.natOutgoing",
        ),
        // BGPPeer
        (
            "peer bad ip",
            variant(&peer(), &[("/spec/peerIP", json!("198.19.0.300"))]),
            "spec.peerIP",
        ),
        (
            "peer bad port",
            variant(&peer(), &[("/spec/peerIP", json!("198.19.0.1:0"))]),
            "spec.peerIP",
        ),
        (
            "peer v6 no brackets port",
            variant(&peer(), &[("/spec/peerIP", json!("[2001:db8::1:179"))]),
            "spec.peerIP",
        ),
        (
            "peer port too big",
            variant(&peer(), &[("/spec/peerIP", json!("[2001:db8::1]:70000"))]),
            "spec.peerIP",
        ),
        (
            "peer as zero",
            variant(&peer(), &[("/spec/asNumber", json!(0))]),
            "spec.asNumber",
        ),
        (
            "peer as too big",
            variant(&peer(), &[("/spec/asNumber", json!(4294967296u64))]),
            "spec.asNumber",
        ),
        (
            "peer as negative",
            variant(&peer(), &[("/spec/asNumber", json!(-5))]),
            "spec.asNumber",
        ),
        (
            "peer asdot overflow",
            variant(&peer(), &[("/spec/asNumber", json!("1.70000"))]),
            "spec.asNumber",
        ),
        (
            "peer as text",
            variant(&peer(), &[("/spec/asNumber", json!("sixty"))]),
            "spec.asNumber",
        ),
        (
            "peer missing as",
            variant(&peer(), &[("/spec/asNumber", Value::Null)]),
            "spec.asNumber",
        ),
        (
            "peer ip and selector",
            variant(&peer(), &[("/spec/peerSelector", json!("has(rr)"))]),
            "spec.peerSelector",
        ),
        (
            "peer neither ip nor selector",
            variant(
                &peer(),
                &[
                    ("/spec/peerIP", Value::Null),
                    ("/spec/asNumber", Value::Null),
                ],
            ),
            "spec.peerIP",
        ),
        (
            "peer node and selector",
            variant(
                &peer(),
                &[
                    ("/spec/node", json!("n1")),
                    ("/spec/nodeSelector", json!("all()")),
                ],
            ),
            "spec.nodeSelector",
        ),
        (
            "peer bad restart time",
            variant(&peer(), &[("/spec/maxRestartTime", json!("2 minutes"))]),
            "spec.maxRestartTime",
        ),
        (
            "peer ttl zero",
            variant(&peer(), &[("/spec/ttlSecurity", json!(0))]),
            "spec.ttlSecurity",
        ),
        (
            "peer ttl too big",
            variant(&peer(), &[("/spec/ttlSecurity", json!(256))]),
            "spec.ttlSecurity",
        ),
        (
            "peer password no ref",
            variant(&peer(), &[("/spec/password", json!({}))]),
            "spec.password.secretKeyRef",
        ),
        (
            "peer password empty key",
            variant(
                &peer(),
                &[(
                    "/spec/password",
                    json!({"secretKeyRef": {"name": "s", "key": ""}}),
                )],
            ),
            "spec.password.secretKeyRef.key",
        ),
        (
            "peer bad filter name",
            variant(&peer(), &[("/spec/filters", json!(["Not OK"]))]),
            "spec.filters[0]",
        ),
        (
            "peer self and keep",
            variant(
                &peer(),
                &[
                    ("/spec/keepOriginalNextHop", json!(true)),
                    ("/spec/nextHopMode", json!("Self")),
                ],
            ),
            "spec.nextHopMode",
        ),
        (
            "peer allowas-in too many",
            variant(&peer(), &[("/spec/numAllowedLocalASNumbers", json!(11))]),
            "spec.numAllowedLocalASNumbers",
        ),
        // BGPConfiguration
        (
            "conf bad name",
            variant(&bgpconf(), &[("/metadata/name", json!("other"))]),
            "metadata.name",
        ),
        (
            "conf node-level mesh",
            variant(&bgpconf(), &[("/metadata/name", json!("node.n1"))]),
            "spec.asNumber",
        ),
        (
            "conf service cidr",
            variant(
                &bgpconf(),
                &[(
                    "/spec/serviceClusterIPs",
                    json!([{"cidr": "198.19.0.1/16"}]),
                )],
            ),
            "spec.serviceClusterIPs[0].cidr",
        ),
        (
            "conf port zero",
            variant(&bgpconf(), &[("/spec/listenPort", json!(0))]),
            "spec.listenPort",
        ),
        (
            "conf community",
            variant(
                &bgpconf(),
                &[(
                    "/spec/communities",
                    json!([{"name": "x", "value": "70000:1"}]),
                )],
            ),
            "spec.communities[0].value",
        ),
        (
            "conf unknown community ref",
            variant(
                &bgpconf(),
                &[(
                    "/spec/prefixAdvertisements",
                    json!([{"cidr": "198.18.0.0/16", "communities": ["nope"]}]),
                )],
            ),
            "spec.prefixAdvertisements[0].communities[0]",
        ),
        (
            "conf severity",
            variant(&bgpconf(), &[("/spec/logSeverityScreen", json!("Chatty"))]),
            "spec.logSeverityScreen",
        ),
        // BGPFilter
        (
            "filter v6 cidr in v4",
            variant(
                &filter(),
                &[("/spec/exportV4/0/cidr", json!("2001:db8::/32"))],
            ),
            "spec.exportV4[0].cidr",
        ),
        (
            "filter cidr without op",
            variant(
                &filter(),
                &[("/spec/exportV4/0/matchOperator", Value::Null)],
            ),
            "spec.exportV4[0].matchOperator",
        ),
        (
            "filter bad op",
            variant(
                &filter(),
                &[("/spec/exportV4/0/matchOperator", json!("Within"))],
            ),
            "spec.exportV4[0].matchOperator",
        ),
        (
            "filter bad action",
            variant(&filter(), &[("/spec/exportV4/0/action", json!("Drop"))]),
            "spec.exportV4[0].action",
        ),
        (
            "filter prefix min>max",
            variant(
                &filter(),
                &[(
                    "/spec/exportV4/0/prefixLength",
                    json!({"min": 28, "max": 24}),
                )],
            ),
            "spec.exportV4[0].prefixLength",
        ),
        (
            "filter prefix max>32",
            variant(
                &filter(),
                &[("/spec/exportV4/0/prefixLength", json!({"max": 33}))],
            ),
            "spec.exportV4[0].prefixLength.max",
        ),
        // GlobalNetworkPolicy (Calico)
        (
            "gnp bad action",
            variant(&gnp(), &[("/spec/ingress/0/action", json!("Accept"))]),
            "spec.ingress[0].action",
        ),
        (
            "gnp bad selector",
            variant(&gnp(), &[("/spec/selector", json!("app = 'x'"))]),
            "spec.selector",
        ),
        (
            "gnp bad net",
            variant(
                &gnp(),
                &[("/spec/ingress/0/source/nets/0", json!("198.18.0.0/33"))],
            ),
            "spec.ingress[0].source.nets[0]",
        ),
        (
            "gnp bad port",
            variant(
                &gnp(),
                &[("/spec/ingress/0/destination/ports", json!([70000]))],
            ),
            "spec.ingress[0].destination.ports[0]",
        ),
        (
            "gnp port range reversed",
            variant(
                &gnp(),
                &[("/spec/ingress/0/destination/ports", json!(["90:80"]))],
            ),
            "spec.ingress[0].destination.ports[0]",
        ),
        (
            "gnp ports without protocol",
            variant(&gnp(), &[("/spec/ingress/0/protocol", Value::Null)]),
            "spec.ingress[0].destination.ports",
        ),
        (
            "gnp ports with icmp",
            variant(&gnp(), &[("/spec/ingress/0/protocol", json!("ICMP"))]),
            "spec.ingress[0].destination.ports",
        ),
        (
            "gnp bad protocol",
            variant(&gnp(), &[("/spec/ingress/0/protocol", json!("QUIC"))]),
            "spec.ingress[0].protocol",
        ),
        (
            "gnp protocol 256",
            variant(&gnp(), &[("/spec/ingress/0/protocol", json!(256))]),
            "spec.ingress[0].protocol",
        ),
        (
            "gnp icmp without protocol",
            variant(
                &gnp(),
                &[
                    ("/spec/ingress/0/protocol", json!("UDP")),
                    ("/spec/ingress/0/icmp", json!({"type": 8})),
                ],
            ),
            "spec.ingress[0].icmp",
        ),
        (
            "gnp ipversion",
            variant(&gnp(), &[("/spec/ingress/0/ipVersion", json!(5))]),
            "spec.ingress[0].ipVersion",
        ),
        (
            "gnp net vs ipversion",
            variant(&gnp(), &[("/spec/ingress/0/ipVersion", json!(6))]),
            "spec.ingress[0].source.nets[0]",
        ),
        (
            "gnp tier name",
            variant(&gnp(), &[("/spec/tier", json!("security"))]),
            "metadata.name",
        ),
        (
            "gnp order nan",
            variant(&gnp(), &[("/spec/order", json!("high"))]),
            "spec.order",
        ),
        (
            "gnp bad type",
            variant(&gnp(), &[("/spec/types", json!(["Inbound"]))]),
            "spec.types[0]",
        ),
        (
            "gnp ingress without type",
            variant(&gnp(), &[("/spec/types", json!(["Egress"]))]),
            "spec.ingress",
        ),
        (
            "gnp doNotTrack log",
            variant(
                &gnp(),
                &[
                    ("/spec/doNotTrack", json!(true)),
                    ("/spec/applyOnForward", json!(true)),
                    ("/spec/ingress/0/action", json!("Log")),
                ],
            ),
            "spec.ingress[0].action",
        ),
        (
            "gnp preDNAT egress",
            variant(
                &gnp(),
                &[
                    ("/spec/preDNAT", json!(true)),
                    ("/spec/applyOnForward", json!(true)),
                    ("/spec/egress", json!([{"action": "Allow"}])),
                ],
            ),
            "spec.egress",
        ),
        (
            "gnp unknown rule field",
            variant(&gnp(), &[("/spec/ingress/0/sauce", json!({}))]),
            "spec.ingress[0]",
        ),
        (
            "gnp bad namespace selector",
            variant(
                &gnp(),
                &[("/spec/ingress/0/source/namespaceSelector", json!("has("))],
            ),
            "spec.ingress[0].source.namespaceSelector",
        ),
        // Kubernetes NetworkPolicy
        (
            "knp bad operator",
            variant(
                &knp(),
                &[(
                    "/spec/podSelector",
                    json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
                )],
            ),
            "spec.podSelector.matchExpressions[0].operator",
        ),
        (
            "knp bad protocol",
            variant(
                &knp(),
                &[("/spec/ingress/0/ports/0/protocol", json!("XTP"))],
            ),
            "spec.ingress[0].ports[0].protocol",
        ),
        (
            "knp bad port",
            variant(&knp(), &[("/spec/ingress/0/ports/0/port", json!(70000))]),
            "spec.ingress[0].ports[0].port",
        ),
        (
            "knp bad policy type",
            variant(&knp(), &[("/spec/policyTypes", json!(["Sideways"]))]),
            "spec.policyTypes[0]",
        ),
        // envelope
        (
            "unknown kind",
            variant(&pool(), &[("/kind", json!("StagedNetworkPolicy"))]),
            "kind",
        ),
        (
            "unknown apiVersion",
            variant(&pool(), &[("/apiVersion", json!("example.com/v9"))]),
            "apiVersion",
        ),
        (
            "missing kind",
            variant(&pool(), &[("/kind", Value::Null)]),
            "kind",
        ),
    ]
}

#[test]
fn invalid_variants_are_rejected_with_their_field_path() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for (name, doc, path) in &cases {
        match resource_from_value(doc.clone()) {
            Ok(r) => failures.push(format!("{name}: accepted {}", r.display_name())),
            Err(errors) => {
                let matched = errors
                    .iter()
                    .any(|e| e.path == *path || e.path.starts_with(&format!("{path}.")));
                if !matched {
                    failures.push(format!("{name}: wanted path {path}, got {errors:?}"));
                }
                assert!(errors.iter().all(|e| !e.reason.is_empty()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_bases_are_valid() {
    for base in [pool(), peer(), bgpconf(), gnp(), filter(), knp()] {
        resource_from_value(base.clone()).unwrap_or_else(|e| panic!("{base}: {e:?}"));
    }
}

#[test]
fn examples_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in parse_resources(&text).unwrap() {
            assert!(
                doc.result.is_ok(),
                "{}: {}: {:?}",
                path.display(),
                doc.label,
                doc.result
            );
            n += 1;
        }
    }
    assert!(n >= 5);
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    let text = "apiVersion: brindle.dev/v1\nkind: IPPool\nmetadata:\n  name: [unclosed\nspec: {}\n";
    let err = parse_documents(text).unwrap_err();
    assert!(err.line >= 4, "{err}");
    assert!(err.column > 0, "{err}");
    let json_err = parse_documents("{\"kind\": \"IPPool\",\n \"spec\": }").unwrap_err();
    assert_eq!(json_err.line, 2, "{json_err}");
}

#[test]
fn k8s_policy_is_converted_with_calico_semantics() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/k8s-networkpolicy.yaml"
    ))
    .unwrap();
    let docs = parse_resources(&text).unwrap();
    let Ok(Resource::NetworkPolicy(np)) = &docs[0].result else {
        panic!("{:?}", docs[0].result)
    };
    assert_eq!(
        np.metadata.name.as_deref(),
        Some("knp.default.db-allow-api")
    );
    assert_eq!(np.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(np.spec.order, Some(1000.0));
    assert_eq!(np.spec.selector.as_deref(), Some("app == \"db\""));
    // Two peers × one protocol = two ingress rules, each on TCP 5432.
    assert_eq!(np.spec.ingress.len(), 2);
    assert_eq!(
        np.spec.ingress[0].source.selector.as_deref(),
        Some("app == \"api\"")
    );
    assert_eq!(
        np.spec.ingress[1].source.namespace_selector.as_deref(),
        Some("team in {\"ops\", \"shop\"}")
    );
    assert_eq!(np.spec.ingress[1].source.selector.as_deref(), Some("all()"));
    assert_eq!(np.spec.ingress[0].destination.ports[0].to_string(), "5432");
    assert_eq!(np.spec.egress[0].destination.nets, vec!["198.18.0.0/15"]);
    assert_eq!(
        np.spec.egress[0].destination.not_nets,
        vec!["198.18.255.0/24"]
    );
}

#[test]
fn pool_overlaps_are_found() {
    let text = "apiVersion: brindle.dev/v1\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 198.18.0.0/16}\n---\n\
                apiVersion: brindle.dev/v1\nkind: IPPool\nmetadata: {name: b}\nspec: {cidr: 198.18.64.0/18}\n---\n\
                apiVersion: brindle.dev/v1\nkind: IPPool\nmetadata: {name: c}\nspec: {cidr: 198.19.0.0/16}\n";
    let pools: Vec<_> = parse_resources(text)
        .unwrap()
        .into_iter()
        .map(|d| match d.result.unwrap() {
            Resource::IPPool(p) => p,
            _ => unreachable!(),
        })
        .collect();
    let errs = brindle_crds::ippool::check_pool_overlaps(&pools);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "IPPool/b: spec.cidr");
}

#[test]
fn defaults_follow_calico() {
    let Resource::IPPool(p) = resource_from_value(pool()).unwrap() else {
        unreachable!()
    };
    assert_eq!(p.spec.effective_block_size(), 26);
    assert_eq!(p.spec.node_selector, "all()");
    assert_eq!(p.spec.ipip_mode, brindle_crds::ippool::EncapMode::Never);
    let v6 = variant(&pool(), &[("/spec/cidr", json!("2001:db8::/48"))]);
    let Resource::IPPool(p6) = resource_from_value(v6).unwrap() else {
        unreachable!()
    };
    assert_eq!(p6.spec.effective_block_size(), 122);
    let Resource::BGPConfiguration(c) = resource_from_value(json!({"apiVersion": "brindle.dev/v1",
        "kind": "BGPConfiguration", "metadata": {"name": "default"}, "spec": {}}))
    .unwrap() else {
        unreachable!()
    };
    assert!(c.spec.mesh_enabled());
    assert_eq!(c.spec.as_number_or_default().0, 64512);
    assert_eq!(c.spec.listen_port_or_default(), 179);
    let Resource::BGPPeer(p) =
        resource_from_value(variant(&peer(), &[("/spec/asNumber", json!("1.10"))])).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(p.spec.as_number.unwrap().0, 65546);
}

#[test]
fn resources_round_trip_through_json() {
    for base in [pool(), peer(), bgpconf(), gnp(), filter()] {
        let r = resource_from_value(base).unwrap();
        let again = resource_from_value(r.to_value()).unwrap();
        assert_eq!(r, again);
    }
}
