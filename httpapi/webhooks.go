package httpapi

import (
	"net/http"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// deliveryList is the answer of GET /tasks/{id}/deliveries.
type deliveryList struct {
	Deliveries []*commonops.Delivery `json:"deliveries"`
}

// handleDeliveries serves GET /tasks/{id}/deliveries: the task's webhook
// deliveries with every attempt.
func handleDeliveries(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		ds, err := s.svc.Deliveries(r.Context(), info(r).tenant, id)
		if err != nil {
			return err
		}
		if ds == nil {
			ds = []*commonops.Delivery{}
		}
		s.writeJSON(w, r, http.StatusOK, deliveryList{Deliveries: ds})
		return nil
	})
}

// subscriptionList is the answer of GET /webhooks.
type subscriptionList struct {
	Subscriptions []*commonops.Subscription `json:"subscriptions"`
}

// handleCreateSubscription serves POST /webhooks: 201 with the
// subscription.
func handleCreateSubscription(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		var in operations.SubscriptionInput
		if err := s.decode(w, r, &in); err != nil {
			return err
		}
		sub, err := s.svc.CreateSubscription(r.Context(), info(r).tenant, in)
		if err != nil {
			return err
		}
		w.Header().Set("Location", prefix+"/webhooks/"+sub.ID)
		s.writeJSON(w, r, http.StatusCreated, sub)
		return nil
	})
}

// handleListSubscriptions serves GET /webhooks: the tenant's
// subscriptions, oldest first.
func handleListSubscriptions(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		subs, err := s.svc.Subscriptions(r.Context(), info(r).tenant)
		if err != nil {
			return err
		}
		if subs == nil {
			subs = []*commonops.Subscription{}
		}
		s.writeJSON(w, r, http.StatusOK, subscriptionList{Subscriptions: subs})
		return nil
	})
}

// handleDeleteSubscription serves DELETE /webhooks/{subscriptionId}: 204.
func handleDeleteSubscription(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		if err := s.svc.DeleteSubscription(r.Context(), info(r).tenant, r.PathValue("subscriptionId")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
