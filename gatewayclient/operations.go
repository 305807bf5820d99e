package gatewayclient

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
)

// Namespaces of IR's SOAP services and of the payload types they carry. The
// service namespaces come from the WSDLs' targetNamespace; the payload
// namespaces from the XSDs in schema/xsd.
const (
	NamespaceReturns        = "https://services.ird.govt.nz/GWS/Returns/"
	NamespaceEmployment     = "https://services.ird.govt.nz/GWS/Employment/v2/"
	NamespaceIntermediation = "https://services.ird.govt.nz/GWS/Intermediation/"

	nsReturnGSTv1      = "urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"
	nsReturnEIv2       = "urn:www.ird.govt.nz/GWS:types/ReturnEI.v2"
	nsReturnCommonv1   = "urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1"
	nsReturnCommonv2   = "urn:www.ird.govt.nz/GWS:types/ReturnCommon.v2"
	nsEmploymentv2     = "urn:www.ird.govt.nz/GWS:types/Employment.v2"
	nsIntermediationv1 = "urn:www.ird.govt.nz/GWS:types/Intermediation.v1"
)

// Operation describes one gateway operation: for a SOAP service, every name
// the envelope needs (they are not uniform across operations, so each is
// taken from IR's WSDLs, and a test checks this table against them); for a
// REST service, the HTTP method. Operations are values from the catalog;
// get one with LookupOperation.
type Operation struct {
	Service Service
	Name    string // "File", "RetrieveStatus"...; REST: "account", "list", "status"

	// Action is the request's WS-Addressing Action (SOAP only).
	Action string
	// Namespace is the service namespace of the operation element and its
	// message element, e.g. NamespaceReturns.
	Namespace string
	// MsgElement is the operation element's child, e.g. "ReturnFileRequestMsg".
	MsgElement string
	// WrapperElement and WrapperNamespace name the element that holds the
	// payload, e.g. "FileRequestWrapper" in ".../Returns/:types/FileRequest".
	WrapperElement   string
	WrapperNamespace string
	// Payloads lists the payload root elements the operation accepts, e.g.
	// File takes ReturnGST.v1 or ReturnEI.v2 <fileRequest>.
	Payloads []xml.Name

	// The answer's names: <{Namespace}ResponseElement> > <ResultElement> >
	// <{ResponseWrapperNamespace}ResponseWrapperElement> > payload.
	ResponseAction           string
	ResponseElement          string
	ResultElement            string
	ResponseWrapperElement   string
	ResponseWrapperNamespace string

	// ReconcileOnLoss marks an operation whose lost answer leaves an
	// uncertain outcome that must be reconciled before it is ever resent
	// (a return File: IR offers no idempotency key).
	ReconcileOnLoss bool

	// Method is the HTTP method of a REST operation; empty for SOAP.
	Method string
}

// SOAP reports whether the service speaks SOAP 1.2 (as opposed to JSON REST).
func (s Service) SOAP() bool {
	switch s {
	case ServiceReturns, ServiceEmployment, ServiceIntermediation:
		return true
	}
	return false
}

// Validate reports whether s is a service gatewayq knows.
func (s Service) Validate() error {
	switch s {
	case ServiceReturns, ServiceEmployment, ServiceIntermediation, ServiceAccount:
		return nil
	}
	return fmt.Errorf("gatewayclient: unknown service %q", string(s))
}

// Accepts reports whether calls to s may be authorised with m. IR takes only
// end-user OAuth tokens for the SOAP services (return filing, employment,
// intermediation); the REST APIs take an M2M JWT or an OAuth token.
func (s Service) Accepts(m AuthMode) bool {
	switch {
	case s.SOAP():
		return m == AuthOAuth
	case s == ServiceAccount:
		return m == AuthOAuth || m == AuthM2M
	}
	return false
}

// LookupOperation returns the catalog entry for op of service s. An unknown
// service or operation is a *Error of ClassInvalid: a job naming it can never
// succeed.
func LookupOperation(s Service, op string) (Operation, error) {
	ops, ok := catalog[s]
	if !ok {
		return Operation{}, &Error{Class: ClassInvalid, Operation: op, Message: fmt.Sprintf("unknown service %q", string(s))}
	}
	o, ok := ops[op]
	if !ok {
		return Operation{}, &Error{Class: ClassInvalid, Operation: op, Message: fmt.Sprintf("service %s has no operation %q", s, op)}
	}
	o.Payloads = slices.Clone(o.Payloads) // callers may not edit the catalog
	return o, nil
}

// Operations returns the names of the operations of s, sorted.
func Operations(s Service) []string {
	names := make([]string, 0, len(catalog[s]))
	for n := range catalog[s] {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// acceptsPayload reports whether name is a legal payload root for o.
func (o Operation) acceptsPayload(name xml.Name) bool {
	return slices.Contains(o.Payloads, name)
}

// soapOp builds a catalog entry. msg and wrapper are given in full because
// IR's names are irregular (ReturnFileRequestMsg, FilingObligationsRequestMsg,
// EmploymentEventRequestWrapper...); the type-namespace suffix and the
// response names follow one pattern in all three WSDLs, which the WSDL test
// confirms.
func soapOp(s Service, ns, actionPrefix, name, msg, wrapper, typeSuffix string, payloads ...xml.Name) Operation {
	respTypeSuffix := typeSuffix[:len(typeSuffix)-len("Request")] + "Response"
	respWrapper := wrapper[:len(wrapper)-len("RequestWrapper")] + "ResponseWrapper"
	return Operation{
		Service:                  s,
		Name:                     name,
		Action:                   actionPrefix + name,
		Namespace:                ns,
		MsgElement:               msg,
		WrapperElement:           wrapper,
		WrapperNamespace:         ns + ":types/" + typeSuffix,
		Payloads:                 payloads,
		ResponseAction:           actionPrefix + name + "Response",
		ResponseElement:          name + "Response",
		ResultElement:            name + "Result",
		ResponseWrapperElement:   respWrapper,
		ResponseWrapperNamespace: ns + ":types/" + respTypeSuffix,
	}
}

func restOp(name, method string) Operation {
	return Operation{Service: ServiceAccount, Name: name, Method: method}
}

func qn(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

var catalog = func() map[Service]map[string]Operation {
	const (
		ret = NamespaceReturns
		emp = NamespaceEmployment
		itm = NamespaceIntermediation

		retAction = NamespaceReturns + "Return/"
		empAction = NamespaceEmployment + "Employment/"
		itmAction = NamespaceIntermediation + "Intermediation/"
	)
	// GST (ReturnsGSTDevWsdl.v1) and payday EI (ReturnsEIDevWsdl.v2) share
	// the one Returns endpoint; the payload's namespace tells them apart.
	formInfo := []xml.Name{qn(nsReturnCommonv1, "retrieveFormInfoRequest"), qn(nsReturnEIv2, "retrieveEIRequest")}
	file := soapOp(ServiceReturns, ret, retAction, "File", "ReturnFileRequestMsg", "FileRequestWrapper", "FileRequest",
		qn(nsReturnGSTv1, "fileRequest"), qn(nsReturnEIv2, "fileRequest"))
	file.ReconcileOnLoss = true

	list := []Operation{
		file,
		soapOp(ServiceReturns, ret, retAction, "Prepop", "ReturnPrepopRequestMsg", "PrepopRequestWrapper", "PrepopRequest", formInfo...),
		soapOp(ServiceReturns, ret, retAction, "RetrieveStatus", "ReturnStatusRequestMsg", "RetrieveStatusRequestWrapper", "RetrieveStatusRequest", formInfo...),
		soapOp(ServiceReturns, ret, retAction, "RetrieveReturn", "RetrieveReturnRequestMsg", "RetrieveReturnRequestWrapper", "RetrieveReturnRequest", formInfo...),
		soapOp(ServiceReturns, ret, retAction, "RetrieveFilingObligations", "FilingObligationsRequestMsg", "RetrieveFilingObligationsRequestWrapper", "RetrieveFilingObligationsRequest",
			qn(nsReturnCommonv1, "retrieveFilingObligationsRequest"), qn(nsReturnCommonv2, "retrieveFilingObligationsRequest")),

		soapOp(ServiceEmployment, emp, empAction, "Create", "CreateRequestMsg", "CreateRequestWrapper", "CreateRequest", qn(nsEmploymentv2, "createRequest")),
		soapOp(ServiceEmployment, emp, empAction, "Update", "UpdateRequestMsg", "UpdateRequestWrapper", "UpdateRequest", qn(nsEmploymentv2, "updateRequest")),
		soapOp(ServiceEmployment, emp, empAction, "Terminate", "TerminateRequestMsg", "TerminateRequestWrapper", "TerminateRequest", qn(nsEmploymentv2, "terminateRequest")),
		soapOp(ServiceEmployment, emp, empAction, "RetrieveList", "RetrieveListRequestMsg", "RetrieveListRequestWrapper", "RetrieveListRequest", qn(nsEmploymentv2, "retrieveListRequest")),
		soapOp(ServiceEmployment, emp, empAction, "Event", "EventRequestMsg", "EmploymentEventRequestWrapper", "EventRequest", qn(nsEmploymentv2, "eventRequest")),

		soapOp(ServiceIntermediation, itm, itmAction, "Link", "LinkRequestMsg", "LinkRequestWrapper", "LinkRequest", qn(nsIntermediationv1, "linkRequest")),
		soapOp(ServiceIntermediation, itm, itmAction, "Delink", "DelinkRequestMsg", "DelinkRequestWrapper", "DelinkRequest", qn(nsIntermediationv1, "delinkRequest")),
		soapOp(ServiceIntermediation, itm, itmAction, "Update", "UpdateRequestMsg", "UpdateRequestWrapper", "UpdateRequest", qn(nsIntermediationv1, "updateRequest")),
		soapOp(ServiceIntermediation, itm, itmAction, "RetrieveClient", "RetrieveClientRequestMsg", "RetrieveClientRequestWrapper", "RetrieveClientRequest", qn(nsIntermediationv1, "retrieveClientRequest")),
		soapOp(ServiceIntermediation, itm, itmAction, "RetrieveClientList", "RetrieveClientListRequestMsg", "RetrieveClientListRequestWrapper", "RetrieveClientListRequest", qn(nsIntermediationv1, "retrieveClientListRequest")),

		// Account REST API (Account-2021-09-14.yaml): POST .../account and
		// .../list with a JSON body, GET .../status.
		restOp("account", http.MethodPost),
		restOp("list", http.MethodPost),
		restOp("status", http.MethodGet),
	}
	m := make(map[Service]map[string]Operation)
	for _, o := range list {
		if m[o.Service] == nil {
			m[o.Service] = make(map[string]Operation)
		}
		m[o.Service][o.Name] = o
	}
	return m
}()
