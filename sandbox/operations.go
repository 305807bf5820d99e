package sandbox

import "encoding/xml"

// Namespaces the sandbox reads and writes. They are IR's, copied from the
// WSDLs and samples under testdata/ir-gws; the sandbox keeps its own copy
// rather than sharing gatewayclient's so a typo there cannot be mirrored here.
const (
	nsSOAP12     = "http://www.w3.org/2003/05/soap-envelope"
	nsSOAP11     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsWSA        = "http://www.w3.org/2005/08/addressing"
	nsXSI        = "http://www.w3.org/2001/XMLSchema-instance"
	nsCommonV1   = "urn:www.ird.govt.nz/GWS:types/Common.v1"
	nsCommonV2   = "urn:www.ird.govt.nz/GWS:types/Common.v2"
	nsRetComV1   = "urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1"
	nsRetComV2   = "urn:www.ird.govt.nz/GWS:types/ReturnCommon.v2"
	nsReturnGST  = "urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"
	nsReturnEI   = "urn:www.ird.govt.nz/GWS:types/ReturnEI.v2"
	nsEmployment = "urn:www.ird.govt.nz/GWS:types/Employment.v2"
	nsIntermed   = "urn:www.ird.govt.nz/GWS:types/Intermediation.v1"
)

// service is one of IR's SOAP services as the sandbox serves it.
type service struct {
	name string // "returns", "employment", "intermediation": the Stats.Calls prefix
	// ns is the namespace of the operation, Msg and {Op}Response elements.
	ns string
	// actionPrefix + operation name is the request's wsa:Action; + "Response"
	// the answer's.
	actionPrefix string
}

var (
	svcReturns = &service{
		name:         "returns",
		ns:           "https://services.ird.govt.nz/GWS/Returns/",
		actionPrefix: "https://services.ird.govt.nz/GWS/Returns/Return/",
	}
	svcEmployment = &service{
		name:         "employment",
		ns:           "https://services.ird.govt.nz/GWS/Employment/v2/",
		actionPrefix: "https://services.ird.govt.nz/GWS/Employment/v2/Employment/",
	}
	svcIntermediation = &service{
		name:         "intermediation",
		ns:           "https://services.ird.govt.nz/GWS/Intermediation/",
		actionPrefix: "https://services.ird.govt.nz/GWS/Intermediation/Intermediation/",
	}
)

// operation is one SOAP operation: the names IR's WSDL gives its request
// nesting ({Op} > msg > wrapper > payload) and its response nesting
// ({Op}Response > {Op}Result > respWrapper > inner element). The names are
// irregular (ReturnFileRequestMsg, FilingObligationsRequestMsg,
// EmploymentEventRequestWrapper), hence a table; TestOperationTableMatchesWSDL
// checks it against the WSDLs in testdata/ir-gws/wsdl.
type operation struct {
	svc           *service
	name          string // "File"
	msg           string // "ReturnFileRequestMsg"
	wrapper       string // "FileRequestWrapper"
	wrapperNS     string // "https://services.ird.govt.nz/GWS/Returns/:types/FileRequest"
	respWrapper   string // "FileResponseWrapper"
	respWrapperNS string // "https://services.ird.govt.nz/GWS/Returns/:types/FileResponse"
	// payloads are the elements the WSDLs allow inside the wrapper (the
	// returns service is one endpoint for GST v1 and EI v2, so several).
	payloads []xml.Name
}

func (o *operation) action() string         { return o.svc.actionPrefix + o.name }
func (o *operation) responseAction() string { return o.svc.actionPrefix + o.name + "Response" }
func (o *operation) label() string          { return o.svc.name + "/" + o.name }

func op(svc *service, name, msg, wrapper, reqType, respWrapper, respType string, payloads ...xml.Name) *operation {
	return &operation{
		svc:           svc,
		name:          name,
		msg:           msg,
		wrapper:       wrapper,
		wrapperNS:     svc.ns + ":types/" + reqType,
		respWrapper:   respWrapper,
		respWrapperNS: svc.ns + ":types/" + respType,
		payloads:      payloads,
	}
}

func n(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

// operations is keyed by service, then by operation name.
var operations = map[*service]map[string]*operation{
	svcReturns: index(
		op(svcReturns, "File", "ReturnFileRequestMsg", "FileRequestWrapper", "FileRequest",
			"FileResponseWrapper", "FileResponse",
			n(nsReturnGST, "fileRequest"), n(nsReturnEI, "fileRequest")),
		op(svcReturns, "Prepop", "ReturnPrepopRequestMsg", "PrepopRequestWrapper", "PrepopRequest",
			"PrepopResponseWrapper", "PrepopResponse",
			n(nsRetComV1, "retrieveFormInfoRequest"), n(nsReturnEI, "retrieveEIRequest")),
		op(svcReturns, "RetrieveStatus", "ReturnStatusRequestMsg", "RetrieveStatusRequestWrapper", "RetrieveStatusRequest",
			"RetrieveStatusResponseWrapper", "RetrieveStatusResponse",
			n(nsRetComV1, "retrieveFormInfoRequest"), n(nsReturnEI, "retrieveEIRequest")),
		op(svcReturns, "RetrieveFilingObligations", "FilingObligationsRequestMsg", "RetrieveFilingObligationsRequestWrapper", "RetrieveFilingObligationsRequest",
			"RetrieveFilingObligationsResponseWrapper", "RetrieveFilingObligationsResponse",
			n(nsRetComV1, "retrieveFilingObligationsRequest"), n(nsRetComV2, "retrieveFilingObligationsRequest")),
		op(svcReturns, "RetrieveReturn", "RetrieveReturnRequestMsg", "RetrieveReturnRequestWrapper", "RetrieveReturnRequest",
			"RetrieveReturnResponseWrapper", "RetrieveReturnResponse",
			n(nsRetComV1, "retrieveFormInfoRequest"), n(nsReturnEI, "retrieveEIRequest")),
	),
	svcEmployment: index(
		op(svcEmployment, "Create", "CreateRequestMsg", "CreateRequestWrapper", "CreateRequest",
			"CreateResponseWrapper", "CreateResponse", n(nsEmployment, "createRequest")),
		op(svcEmployment, "Terminate", "TerminateRequestMsg", "TerminateRequestWrapper", "TerminateRequest",
			"TerminateResponseWrapper", "TerminateResponse", n(nsEmployment, "terminateRequest")),
		op(svcEmployment, "Update", "UpdateRequestMsg", "UpdateRequestWrapper", "UpdateRequest",
			"UpdateResponseWrapper", "UpdateResponse", n(nsEmployment, "updateRequest")),
		op(svcEmployment, "RetrieveList", "RetrieveListRequestMsg", "RetrieveListRequestWrapper", "RetrieveListRequest",
			"RetrieveListResponseWrapper", "RetrieveListResponse", n(nsEmployment, "retrieveListRequest")),
		op(svcEmployment, "Event", "EventRequestMsg", "EmploymentEventRequestWrapper", "EventRequest",
			"EmploymentEventResponseWrapper", "EventResponse", n(nsEmployment, "eventRequest")),
	),
	svcIntermediation: index(
		op(svcIntermediation, "RetrieveClientList", "RetrieveClientListRequestMsg", "RetrieveClientListRequestWrapper", "RetrieveClientListRequest",
			"RetrieveClientListResponseWrapper", "RetrieveClientListResponse", n(nsIntermed, "retrieveClientListRequest")),
		op(svcIntermediation, "Link", "LinkRequestMsg", "LinkRequestWrapper", "LinkRequest",
			"LinkResponseWrapper", "LinkResponse", n(nsIntermed, "linkRequest")),
		op(svcIntermediation, "Delink", "DelinkRequestMsg", "DelinkRequestWrapper", "DelinkRequest",
			"DelinkResponseWrapper", "DelinkResponse", n(nsIntermed, "delinkRequest")),
		op(svcIntermediation, "RetrieveClient", "RetrieveClientRequestMsg", "RetrieveClientRequestWrapper", "RetrieveClientRequest",
			"RetrieveClientResponseWrapper", "RetrieveClientResponse", n(nsIntermed, "retrieveClientRequest")),
		op(svcIntermediation, "Update", "UpdateRequestMsg", "UpdateRequestWrapper", "UpdateRequest",
			"UpdateResponseWrapper", "UpdateResponse", n(nsIntermed, "updateRequest")),
	),
}

func index(ops ...*operation) map[string]*operation {
	m := make(map[string]*operation, len(ops))
	for _, o := range ops {
		m[o.name] = o
	}
	return m
}
