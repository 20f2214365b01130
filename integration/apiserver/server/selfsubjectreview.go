package server

import (
	"context"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
)

// selfSubjectReviewREST serves POST
// /apis/authentication.k8s.io/v1/selfsubjectreviews, the endpoint behind
// `kubectl auth whoami`: it answers with the user the request ran as, i.e.
// after authentication and impersonation. Nothing is stored, so no etcd.
type selfSubjectReviewREST struct {
	now func() time.Time
}

var (
	_ rest.Storage              = selfSubjectReviewREST{}
	_ rest.Creater              = selfSubjectReviewREST{}
	_ rest.Scoper               = selfSubjectReviewREST{}
	_ rest.SingularNameProvider = selfSubjectReviewREST{}
)

func (selfSubjectReviewREST) New() runtime.Object { return &authenticationv1.SelfSubjectReview{} }

func (selfSubjectReviewREST) Destroy() {}

func (selfSubjectReviewREST) NamespaceScoped() bool { return false }

func (selfSubjectReviewREST) GetSingularName() string { return "selfsubjectreview" }

func (r selfSubjectReviewREST) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	if _, ok := obj.(*authenticationv1.SelfSubjectReview); !ok {
		return nil, apierrors.NewBadRequest("not a SelfSubjectReview")
	}
	if createValidation != nil {
		if err := createValidation(ctx, obj.DeepCopyObject()); err != nil {
			return nil, err
		}
	}
	u, ok := request.UserFrom(ctx)
	if !ok {
		return nil, apierrors.NewInternalError(errNoUser)
	}
	status := authenticationv1.UserInfo{
		Username: u.GetName(),
		UID:      u.GetUID(),
		Groups:   append([]string(nil), u.GetGroups()...),
	}
	if extra := u.GetExtra(); len(extra) > 0 {
		status.Extra = make(map[string]authenticationv1.ExtraValue, len(extra))
		for k, v := range extra {
			status.Extra[k] = append(authenticationv1.ExtraValue(nil), v...)
		}
	}
	return &authenticationv1.SelfSubjectReview{
		ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(r.now())},
		Status:     authenticationv1.SelfSubjectReviewStatus{UserInfo: status},
	}, nil
}
