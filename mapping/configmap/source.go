// Package configmap feeds a mapping.Store from the cluster's own aws-auth
// ConfigMap, read and watched with a client-go informer on that one object,
// as aws-iam-authenticator's EKSConfigMap backend reads it.
package configmap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

// DefaultResync is how often the informer re-delivers the object it holds;
// an unchanged object is a no-op (the store compares content hashes).
const DefaultResync = 10 * time.Minute

// Options configure a Source.
type Options struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// Namespace and Name locate the ConfigMap (kube-system, aws-auth).
	// Required.
	Namespace, Name string
	// Store receives the mapping. Required; create it with
	// mapping.StoreOptions{Source: Describe(namespace, name)}.
	Store *mapping.Store
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// Resync defaults to DefaultResync.
	Resync time.Duration
	// SyncTimeout bounds how long Start waits for the first list. Defaults
	// to DefaultSyncTimeout.
	SyncTimeout time.Duration
}

// DefaultSyncTimeout is how long Start waits for the API server by default.
const DefaultSyncTimeout = 30 * time.Second

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("configmap: Options.Client is required"))
	}
	if o.Namespace == "" || o.Name == "" {
		errs = append(errs, errors.New("configmap: Options.Namespace and Name are required"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("configmap: Options.Store is required"))
	}
	if o.Resync < 0 {
		errs = append(errs, fmt.Errorf("configmap: Options.Resync is negative (%s)", o.Resync))
	}
	if o.SyncTimeout < 0 {
		errs = append(errs, fmt.Errorf("configmap: Options.SyncTimeout is negative (%s)", o.SyncTimeout))
	}
	return errors.Join(errs...)
}

// Describe is the display name of a ConfigMap source, used as the store's
// Source and in positions ("configmap kube-system/aws-auth:12").
func Describe(namespace, name string) string {
	return "configmap " + namespace + "/" + name
}

// Source watches one ConfigMap and applies every version of it to a store.
type Source struct {
	opts Options
	log  *zap.Logger
	what string
}

// New validates opts and builds a Source. It does not contact the API
// server: call Start.
func New(opts Options) (*Source, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Resync == 0 {
		opts.Resync = DefaultResync
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = DefaultSyncTimeout
	}
	what := Describe(opts.Namespace, opts.Name)
	return &Source{opts: opts, log: opts.Logger.With(zap.String("source", what)), what: what}, nil
}

// RequiredVerbs are the API verbs a Source uses on its one ConfigMap (a
// preflight get, then the informer's list and watch, all restricted to that
// name): what the proxy's RBAC must grant, with resourceNames, and no more.
// examples/kubernetes/rbac.yaml and the Helm chart are tested against it.
func RequiredVerbs() []string { return []string{"get", "list", "watch"} }

// Errors of Start. Like a missing mapping file at start-up there is no last
// good mapping to keep, so the caller should exit.
var (
	// ErrNotFound: the ConfigMap does not exist.
	ErrNotFound = errors.New("the mapping ConfigMap does not exist")
	// ErrForbidden: the API server refuses to show it to the proxy (RBAC).
	ErrForbidden = errors.New("the API server refuses to show the mapping ConfigMap to this proxy")
)

// Start runs an informer on the one ConfigMap (a field selector on
// metadata.name, so the API server sends nothing else and RBAC can grant
// get/list/watch on that name only) until ctx ends, and waits for its first
// list. It returns an error if the cache does not sync within SyncTimeout, if
// the ConfigMap does not exist (ErrNotFound) or if its first version is
// refused (a *mapping.ParseError); otherwise the store is ready and later
// versions are applied as they arrive: an edit swaps the mapping (or keeps
// the last good one if it is refused), a deletion keeps the last good one
// and says so (result "missing"), a re-creation applies again.
func (s *Source) Start(ctx context.Context) error {
	// One GET first: the informer retries a refused list forever and says
	// nothing to its caller, so an operator would only see a sync timeout
	// where the API server said exactly what is wrong.
	if err := s.preflight(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(s.opts.Client, s.opts.Resync,
		informers.WithNamespace(s.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.opts.Name).String()
		}))
	informer := factory.Core().V1().ConfigMaps().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.apply(obj) },
		UpdateFunc: func(_, obj any) { s.apply(obj) },
		DeleteFunc: s.deleted,
	}); err != nil {
		return fmt.Errorf("configmap: %w", err)
	}
	factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, s.opts.SyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced) {
		return fmt.Errorf("%s: no answer from the API server within %s: %w", s.what, s.opts.SyncTimeout, context.Cause(syncCtx))
	}
	// Handlers of the first list run after HasSynced only as far as the
	// informer's delivery goes; read the object from the cache instead,
	// through the same Apply (an identical version is a no-op).
	obj, exists, err := informer.GetStore().GetByKey(s.opts.Namespace + "/" + s.opts.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", s.what, err)
	}
	if !exists {
		return fmt.Errorf("%s: %w", s.what, ErrNotFound)
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return fmt.Errorf("%s: unexpected object %T", s.what, obj)
	}
	if err := s.opts.Store.Apply(Render(cm)); err != nil && s.opts.Store.Current() == nil {
		return err
	}
	return nil
}

// preflight reads the ConfigMap once, to turn the API server's answer into
// ErrNotFound or ErrForbidden.
func (s *Source) preflight(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.SyncTimeout)
	defer cancel()
	_, err := s.opts.Client.CoreV1().ConfigMaps(s.opts.Namespace).Get(ctx, s.opts.Name, metav1.GetOptions{})
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w", s.what, ErrNotFound)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: %w: %v", s.what, ErrForbidden, err)
	default:
		return fmt.Errorf("%s: %w", s.what, err)
	}
}

func (s *Source) apply(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || cm.Namespace != s.opts.Namespace || cm.Name != s.opts.Name {
		return
	}
	// Errors are logged and counted by the store, which keeps the last
	// good mapping.
	_ = s.opts.Store.Apply(Render(cm))
	s.log.Debug("mapping ConfigMap version applied", zap.String("resourceVersion", cm.ResourceVersion))
}

func (s *Source) deleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok && (cm.Namespace != s.opts.Namespace || cm.Name != s.opts.Name) {
		return
	}
	// Clearing the mapping (what aws-iam-authenticator does) would turn a
	// mistaken delete into an outage for everyone, or, with mapAccounts
	// elsewhere, keep nobody out; neither may happen silently. Revoking is
	// an edit of the ConfigMap.
	s.opts.Store.Missing(fmt.Errorf("%s was deleted; keeping the last good mapping until it is re-created", s.what))
}
