package server

import (
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/kube-openapi/pkg/common"
	openapiutil "k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// newScheme registers authentication.k8s.io/v1 plus the meta types every
// API group needs. The v1 SelfSubjectReview Go type is also registered as
// the group's internal version: the generic handlers decode to the internal
// "hub" version before calling storage, and a type registered under both
// versions converts as a no-op, so the peer needs no internal API package.
func newScheme() (*runtime.Scheme, serializer.CodecFactory, error) {
	scheme := runtime.NewScheme()
	if err := authenticationv1.AddToScheme(scheme); err != nil {
		return nil, serializer.CodecFactory{}, fmt.Errorf("register authentication/v1: %w", err)
	}
	internal := schema.GroupVersion{Group: authenticationv1.GroupName, Version: runtime.APIVersionInternal}
	scheme.AddKnownTypes(internal, &authenticationv1.SelfSubjectReview{})
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	scheme.AddUnversionedTypes(schema.GroupVersion{Version: "v1"},
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
	if err := scheme.SetVersionPriority(authenticationv1.SchemeGroupVersion); err != nil {
		return nil, serializer.CodecFactory{}, fmt.Errorf("version priority: %w", err)
	}
	return scheme, serializer.NewCodecFactory(scheme), nil
}

// openAPIV3Config satisfies InstallAPIGroup, which builds a managed-fields
// type converter from OpenAPI v3 models of every installed resource. The
// peer has no generated OpenAPI definitions, so each type the scheme knows
// gets a permissive object schema under its OpenAPI model name; field
// management never matters for a resource that stores nothing.
func openAPIV3Config(scheme *runtime.Scheme) *common.OpenAPIV3Config {
	permissive := common.OpenAPIDefinition{Schema: spec.Schema{
		SchemaProps: spec.SchemaProps{Type: []string{"object"}},
		VendorExtensible: spec.VendorExtensible{Extensions: spec.Extensions{
			"x-kubernetes-preserve-unknown-fields": true,
		}},
	}}
	// /version is served by a go-restful route outside any group; its
	// response type is not in the scheme.
	defs := map[string]common.OpenAPIDefinition{
		openapiutil.GetCanonicalTypeName(&apimachineryversion.Info{}): permissive,
	}
	for gvk := range scheme.AllKnownTypes() {
		name, err := scheme.ToOpenAPIDefinitionName(gvk)
		if err != nil {
			continue // types without a version (none today) have no model
		}
		defs[name] = permissive
	}
	getDefs := func(common.ReferenceCallback) map[string]common.OpenAPIDefinition { return defs }
	cfg := genericapiserver.DefaultOpenAPIV3Config(getDefs, openapinamer.NewDefinitionNamer(scheme))
	cfg.Info.Title = "apiserver-fake"
	return cfg
}
